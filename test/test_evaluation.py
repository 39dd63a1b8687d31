"""The memory benchmark: metrics, episode split, resume, report files and the CLI, tiny."""

import json

from mowm_ros import cli, geometry
from mowm_ros.data.drift import drift_trajectory, DriftConfig
from mowm_ros.data.episode import Episode, save_episode
from mowm_ros.data.maze_env import episode_name, GenerationConfig
from mowm_ros.evaluation import metrics, report, runner
from mowm_ros.evaluation.episodes import split_episode
from mowm_ros.evaluation.rows import ROWS, rows_from_keys
from mowm_ros.evaluation.sliding_window import window_indices
from mowm_ros.memory import scenes
import numpy as np
import pytest
from tiny_training import save_untrained_checkpoint

SIZE = 32
CONTEXT, HORIZON, SKIP = 6, 4, 2
STEPS = (CONTEXT + HORIZON) * SKIP


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    return save_untrained_checkpoint(tmp_path_factory.mktemp('ckpt'), SIZE, sampler_steps=1)


def synthetic_episode(seed, frames=STEPS):
    """Room frames along a circle, with revisit labels on every third frame."""
    room = scenes.room_scene(seed=seed)
    K = geometry.intrinsics_from_fovy(80.0, SIZE, SIZE)
    rgb, depth, poses = [], [], []
    for i in range(frames):
        pose = geometry.camera_pose_from_planar(2.5 + 0.8 * np.cos(0.3 * i),
                                                2.5 + 0.8 * np.sin(0.3 * i), 0.3 * i, 0.8)
        view = room.render(pose, K, SIZE, SIZE)
        rgb.append(view.rgb)
        depth.append(view.depth)
        poses.append(pose)
    revisit = np.arange(frames) % 3 == 0
    return Episode(rgb=np.stack(rgb), depth=np.stack(depth).astype(np.float32),
                   pose=np.stack(poses), K=K, stamp=np.arange(frames) * 250_000_000,
                   action=np.zeros(frames, np.int64), extras={'revisit': revisit},
                   meta={'params': GenerationConfig(steps=frames).params(), 'seed': seed})


def tiny_config(tmp_path, checkpoint, **overrides):
    values = {'out_dir': str(tmp_path / 'eval'), 'checkpoint': str(checkpoint),
              'device': 'cpu', 'episodes': 2, 'seed_start': 7, 'context': CONTEXT,
              'horizon': HORIZON, 'frame_skip': SKIP, 'episode_steps': STEPS,
              'sampler_steps': 1, 'bf16': False, 'strip_frames': 2}
    values.update(overrides)
    return runner.EvalConfig(**values)


def test_metrics_on_known_images():
    truth = np.zeros((8, 8, 3), np.uint8)
    assert metrics.psnr(truth, truth) == metrics.PSNR_CAP
    assert metrics.ssim(truth, truth) == pytest.approx(1.0)
    off_by_ten = np.full((8, 8, 3), 10, np.uint8)       # MSE 100
    assert metrics.psnr(truth, off_by_ten) == pytest.approx(10 * np.log10(255 ** 2 / 100))
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert metrics.ssim(noisy, 255 - noisy) < 0.0 < metrics.ssim(noisy, noisy // 2 + 10)
    assert metrics.masked_mean([1.0, 2.0, 6.0], [True, False, True]) == 3.5
    assert np.isnan(metrics.masked_mean([1.0], [False]))
    with pytest.raises(ValueError, match='uint8'):
        metrics.psnr(truth.astype(np.float32), truth)


def test_split_and_sliding_window_indices():
    episode = synthetic_episode(0, frames=STEPS)
    split = split_episode(episode, CONTEXT, HORIZON, SKIP)
    assert split.observed.tolist() == [0, 2, 4, 6, 8, 10]
    assert split.targets.tolist() == [12, 14, 16, 18]
    assert split.revisit.tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match='too short'):
        split_episode(episode, CONTEXT, HORIZON + 1, SKIP)
    assert window_indices(10, 4, 2).tolist() == [3, 5, 7, 9]
    assert window_indices(3, 4, 3).tolist() == [0, 0, 0, 2]
    assert [row.name for row in rows_from_keys(['window', 'stm'])] == ['no memory',
                                                                       'sliding window']


def test_run_resumes_splits_revisits_and_writes_the_report(tmp_path, tiny_checkpoint,
                                                           monkeypatch, one_thread):
    config = tiny_config(tmp_path, tiny_checkpoint)
    calls = []

    def source(seed):
        calls.append(seed)
        return synthetic_episode(seed)

    results = runner.run_evaluation(config, source, progress=False)
    assert [r['seed'] for r in results] == [7, 8] and calls == [7, 8]
    for result in results:
        assert set(result['rows']) == {row.name for row in ROWS}
        assert result['revisit'] == [True, False, False, True]
        assert result['observed']['keyframes'] >= 1
        for row in result['rows'].values():
            assert len(row['psnr']) == HORIZON and row['ms_per_frame'] > 0
    assert results[0]['rows']['all three, contrastive']['queries_per_step'] == 3
    assert results[0]['rows']['sliding window']['queries_per_step'] == 3

    # A rerun skips both finished episodes; a stale result (other settings) is redone.
    monkeypatch.setattr(runner, 'evaluate_episode',
                        lambda *a: pytest.fail('a finished episode was evaluated again'))
    assert runner.run_evaluation(config, source, progress=False) == results
    assert calls == [7, 8]
    stale = json.loads(runner.result_path(config, 8).read_text())
    stale['signature']['horizon'] = 99
    runner.result_path(config, 8).write_text(json.dumps(stale))
    assert runner.load_result(config, 8) is None

    summary = report.write_report(config, results)
    out = tmp_path / 'eval'
    for name in ('results.md', 'results.json', 'psnr_horizon.png', 'strips.png'):
        assert (out / name).stat().st_size > 0, name
    psnr = np.array([r['rows']['no memory']['psnr'] for r in results])
    revisit = np.array([r['revisit'] for r in results])
    row = summary['rows']['no memory']
    assert row['psnr_revisit'] == pytest.approx(psnr[revisit].mean())
    assert row['psnr_novel'] == pytest.approx(psnr[~revisit].mean())
    assert row['psnr_all'] == pytest.approx(psnr.mean())
    assert summary['revisit_frames'] == 4 and summary['frames'] == 8
    assert len(summary['targets']) == 1 + 2 * 4 + 2 + 2   # + issue 14's two rgbd targets
    table = (out / 'results.md').read_text()
    assert '| sliding window |' in table and 'beats no memory on revisits' in table
    # Item 3 of issue 14: finetuning steps and the finetuning thread's CPU time per 100
    # observed frames, from what each episode recorded while observing.
    observed = [r['observed'] for r in results]
    assert all(o['finetune_steps'] >= 1 and o['finetune_cpu_seconds'] > 0 for o in observed)
    cost = summary['finetuning_per_100_frames']
    frames = sum(o['frames'] for o in observed)
    assert cost['steps'] == pytest.approx(100 * sum(o['finetune_steps'] for o in observed)
                                          / frames)
    assert cost['cpu_seconds'] == pytest.approx(
        100 * sum(o['finetune_cpu_seconds'] for o in observed) / frames)
    assert 'Episodic finetuning per 100 observed frames' in table
    # Results written before the CPU time was recorded are left out of it, not a KeyError.
    for o in observed:
        del o['finetune_cpu_seconds']
    assert report.finetuning_cost(observed) is None


def cli_argv(tmp_path, checkpoint, *extra):
    """Return the arguments of a tiny ``mowm eval memory-maze`` on one cached episode."""
    cache = tmp_path / 'cache'
    save_episode(cache / episode_name(9, 100_000), synthetic_episode(100_000))
    return ['eval', 'memory-maze', '--out', str(tmp_path / 'out'), '--cache', str(cache),
            '--checkpoint', str(checkpoint), '--device', 'cpu', '--episodes', '1',
            '--context', str(CONTEXT), '--horizon', str(HORIZON), '--episode-steps',
            str(STEPS), '--steps', '1', '--threads', '1', '--no-progress', '--no-bf16',
            *extra]


def test_cli_runs_end_to_end_from_a_cached_episode(tmp_path, tiny_checkpoint, capsys):
    argv = cli_argv(tmp_path, tiny_checkpoint, '--rows', 'stm', 'all')
    assert cli.main(argv) == 0
    output = capsys.readouterr().out
    assert '| all three, contrastive |' in output and '1 of 1 episodes' in output
    summary = json.loads((tmp_path / 'out' / 'results.json').read_text())
    assert summary['seeds'] == [100_000] and list(summary['rows']) == [
        'no memory', 'all three, contrastive']
    assert cli.main(argv + ['--report-only']) == 0


def test_bench_scaling_measures_latency_and_memory_at_each_count(tmp_path, tiny_checkpoint,
                                                                 capsys):
    out = tmp_path / 'scaling.json'
    status = cli.main(['bench', 'scaling', '--checkpoint', str(tiny_checkpoint), '--frames',
                       '3', '6', '--horizon', '1', '--steps', '1', '--repeats', '1',
                       '--size', '24', '--maze-cells', '3', '--max-points', '500',
                       '--threads', '1', '--device', 'cpu', '--out', str(out)])
    assert status == 0
    result = json.loads(out.read_text())
    assert [row['frames'] for row in result['rows']] == [3, 6]
    for row in result['rows']:
        assert row['all three']['median'] > 0 and row['short_term']['median'] > 0
        assert row['rss_mb'] > 0 and row['points'] <= 500
    assert (tmp_path / 'scaling.png').stat().st_size > 0
    assert '| 6 |' in capsys.readouterr().out


def test_conditions_change_what_the_model_is_given_never_the_truth(
        tmp_path, tiny_checkpoint, monkeypatch, one_thread):
    from mowm_ros.world_model import WorldModel

    told = {'observe': [], 'imagine': []}
    observe, imagine = WorldModel.observe, WorldModel.imagine

    def recording_observe(self, frame):   # the real method, recording what it was given
        told['observe'].append((frame.pose, frame.depth is not None))
        return observe(self, frame)

    def recording_imagine(self, poses, **kwargs):
        told['imagine'].append(np.asarray(poses))
        return imagine(self, poses, **kwargs)

    monkeypatch.setattr(WorldModel, 'observe', recording_observe)
    monkeypatch.setattr(WorldModel, 'imagine', recording_imagine)
    episode = synthetic_episode(7)
    split = split_episode(episode, CONTEXT, HORIZON, SKIP)
    results, strips = {}, {}
    for condition in ('rgbd', 'rgb-only', 'drift'):
        told['observe'].clear()
        told['imagine'].clear()
        config = tiny_config(tmp_path, tiny_checkpoint, episodes=1, condition=condition,
                             rows=rows_from_keys(['stm', 'episodic']))
        [results[condition]] = runner.run_evaluation(config, lambda seed: episode,
                                                     progress=False)
        strips[condition] = runner.load_strips(config, 7)
        poses = np.array([pose for pose, _ in told['observe']])
        expected = (drift_trajectory(episode.pose, DriftConfig(seed=7)) if condition == 'drift'
                    else episode.pose)
        np.testing.assert_allclose(poses, expected[split.observed])
        np.testing.assert_allclose(told['imagine'][-1], expected[split.targets])
        assert all(has_depth == (condition != 'rgb-only') for _, has_depth in told['observe'])
        assert runner.result_path(config, 7).parent == (
            tmp_path / 'eval' / ('' if condition == 'rgbd' else condition) / 'per_episode')
        summary = report.write_report(config, [results[condition]])
        assert f'({condition})' in (config.report_dir / 'results.md').read_text()
        targets = [t['target'].split(' (measured')[0] for t in summary['targets']
                   if t['target'].startswith(condition)]
        assert targets == {'rgbd': ['rgbd: + episodic beats no memory on revisits by >= 1.5 dB'],
                           'rgb-only': ['rgb-only: + episodic beats no memory on revisits by '
                                        '>= 2 dB'], 'drift': []}[condition]
    assert results['rgb-only']['observed']['points'] == 0 < results['rgbd']['observed']['points']
    for condition in ('rgb-only', 'drift'):   # the truth is the same images
        np.testing.assert_array_equal(strips[condition]['truth'], strips['rgbd']['truth'])
        assert results[condition]['signature']['condition'] == condition
    # rgbd results keep the signature they had before conditions (and the finetuning thread's
    # scheduling settings) existed.
    assert 'condition' not in results['rgbd']['signature']
    assert not set(runner.FINETUNE_SCHEDULING) & set(
        results['rgbd']['signature']['world_model']['finetune'])
    assert results['drift']['signature']['drift'] == {'yaw_per_metre': 0.03, 'scale': 0.02,
                                                      'spread': 0.5, 'seed': 0}
    with pytest.raises(ValueError, match=r'rgb-only observes no depth.*\+ spatial'):
        tiny_config(tmp_path, tiny_checkpoint, condition='rgb-only')
    with pytest.raises(ValueError, match='condition must be one of'):
        tiny_config(tmp_path, tiny_checkpoint, condition='thermal')


def test_cli_rgb_only_evaluates_the_rows_without_spatial(tmp_path, tiny_checkpoint, capsys):
    argv = cli_argv(tmp_path, tiny_checkpoint, '--condition', 'rgb-only')
    assert cli.main(argv) == 0
    assert 'report in ' + str(tmp_path / 'out' / 'rgb-only') in capsys.readouterr().out
    summary = json.loads((tmp_path / 'out' / 'rgb-only' / 'results.json').read_text())
    assert summary['condition'] == 'rgb-only'
    assert list(summary['rows']) == ['no memory', '+ episodic', 'sliding window']
    assert cli.main(argv + ['--rows', 'stm', 'spatial']) == 2
    assert 'rgb-only observes no depth' in capsys.readouterr().err
