import json

from mowm_ros import cli


def test_bench_memory_command_runs_every_part_and_respects_the_caps(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    status = cli.main(['bench', 'memory', '--repeat', '1', '--integrate-frames', '2',
                       '--render-points', '5000', '--render-views', '2', '--hour-frames', '60',
                       '--hour-max-points', '3000', '--hour-capacity', '5', '--out', str(out)])
    assert status == 0
    results = json.loads(out.read_text())
    assert results['integrate']['count'] == 2 and results['integrate']['frame'] == '640x480'
    assert 0 < results['render']['memory_points'] <= 5250   # the build's cap: 1.05 x
    assert results['render']['worst_case_all_in_view']['points'] == 5000
    hour = results['hour']
    assert hour['max_points_seen'] <= 3000 and hour['evicted_points'] > 0
    assert hour['max_keyframes_seen'] <= 5 < hour['keyframes_admitted']
    assert hour['rss_samples'][-1]['frame'] == 60
    printed = capsys.readouterr().out
    assert results['table'] in printed and printed.count('\n| ') >= 4
