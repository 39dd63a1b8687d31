import json

from mowm_ros import cli


def test_bench_model_command_times_every_expert_set_and_finetuning(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    status = cli.main(['bench', 'model', '--checkpoint', 'random', '--observe', '8',
                       '--horizon', '2', '--steps', '1', '2', '--repeats', '1',
                       '--threads', '1', '--device', 'cpu', '--out', str(out)])
    assert status == 0
    result = json.loads(out.read_text())
    rows = {(row['finetuner'], row['experts'], row['steps']): row for row in result['imagine']}
    never = {key[1:] for key in rows if key[0] == 'never started'}
    assert never == {(experts, steps) for experts in
                     ('short_term', 'short_term+spatial', 'short_term+episodic', 'all three')
                     for steps in (1, 2)}
    # The operating state, at the model's configured sampler steps (4).
    operating = {key for key in rows if key[0] != 'never started'}
    assert operating == {(state, experts, 4) for state in ('alive, idle', 'training')
                         for experts in ('short_term', 'all three')}
    assert all(rows[key]['finetune_steps_per_s'] >= 0 for key in operating
               if key[0] == 'training')
    assert rows[('never started', 'short_term', 1)]['network_queries'] == 1
    assert rows[('training', 'all three', 4)]['network_queries'] == 3
    assert all(row['median'] > 0 and row['context_switches_per_frame'] >= 0
               for row in rows.values())
    assert result['finetune_step_ms']['median'] > 0 and result['device'] == 'cpu'
    assert '| all three | 2 | 3 |' in capsys.readouterr().out


def test_bench_model_times_paths_side_by_side_for_chosen_sets(tmp_path):
    out = tmp_path / 'bench.json'
    status = cli.main(['bench', 'model', '--checkpoint', 'random', '--observe', '8',
                       '--horizon', '2', '--steps', '1', '--repeats', '1', '--paths', '3',
                       '--sets', 'all three', '--no-operating', '--threads', '1',
                       '--device', 'cpu', '--out', str(out)])
    assert status == 0
    result = json.loads(out.read_text())
    assert [(row['experts'], row['paths']) for row in result['imagine']] == [('all three', 3)]
    assert result['paths'] == 3 and result['compile'] == ''
