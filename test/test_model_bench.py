import json

from mowm_ros import cli


def test_bench_model_command_times_every_expert_set_and_finetuning(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    status = cli.main(['bench', 'model', '--checkpoint', 'random', '--observe', '8',
                       '--horizon', '2', '--steps', '1', '2', '--repeats', '1',
                       '--threads', '1', '--device', 'cpu', '--out', str(out)])
    assert status == 0
    result = json.loads(out.read_text())
    rows = {(row['experts'], row['steps']): row for row in result['imagine']}
    assert set(rows) == {(experts, steps) for experts in
                         ('short_term', 'short_term+spatial', 'short_term+episodic', 'all three')
                         for steps in (1, 2)}
    assert rows[('short_term', 1)]['network_queries'] == 1
    assert rows[('all three', 2)]['network_queries'] == 3
    assert all(row['median'] > 0 for row in rows.values())
    assert result['finetune_step_ms']['median'] > 0 and result['device'] == 'cpu'
    assert '| all three | 2 | 3 |' in capsys.readouterr().out
