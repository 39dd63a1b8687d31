"""``mowm adapt``: rosbag2 recordings to a checkpoint the node loads, with before/after report."""

import json
import shutil

from bag_fixtures import EXTRINSICS, write_bag
from mowm_ros.cli import main
from mowm_ros.data.bag_import import extrinsics_matrix
from mowm_ros.data.episode import save_episode
from mowm_ros.data.stretches import (continuous_runs, plan_split, split_recording, SplitError,
                                     StretchConfig)
from mowm_ros.model.checkpoint import default_checkpoint_dir, WEIGHTS_FILE
from mowm_ros.nodes.world_model_node import model_config_from, PARAMETERS
from mowm_ros.world_model import Frame, WorldModel
import numpy as np
import pytest
from safetensors.numpy import load_file
from scene_episodes import maze_episode

# A RealSense driver's topic names (colour as JPEG), which adapt finds without being told.
REALSENSE = {'image_topic': '/camera/color/image_raw/compressed',
             'depth_topic': '/camera/aligned_depth_to_color/image_raw',
             'info_topic': '/camera/color/camera_info', 'odom_topic': '/odom'}
WIDTH, HEIGHT = 80, 60       # a non-square camera
TINY = ['--minutes', '0', '--batch-size', '4', '--workers', '0', '--context', '4',
        '--horizon', '2', '--sampler-steps', '1', '--no-progress', '--threads', '2']


def camera_episode(frames):
    """Return a non-square camera touring a box maze, a frame every 0.25 s."""
    return maze_episode(frames, size=(WIDTH, HEIGHT), rate_hz=4.0)


def record(path, frames=40, **options):
    """Write a recording as a RealSense robot would: JPEG colour, 16UC1 depth, /tf_static."""
    tf_static = [('base_link', 'camera_optical', extrinsics_matrix(EXTRINSICS))]
    options = {'names': REALSENSE, **options}
    write_bag(path, camera_episode(frames), colour='jpeg', depth_encoding='16UC1',
              tf_static=tf_static, **options)
    return path


def adapt(bag, out, *extra):
    return main(['adapt', str(bag), '--out', str(out), *TINY, *extra])


def test_adapt_writes_a_checkpoint_the_node_loads_with_a_before_after_report(tmp_path, capsys):
    out = tmp_path / 'home'
    assert adapt(record(tmp_path / 'bag'), out, '--steps', '2') == 0
    printed = capsys.readouterr().out
    assert '| no memory | base |' in printed and '| all three, contrastive | base |' in printed

    report = json.loads((out / 'report.json').read_text())
    assert report['training']['steps'] == 2
    recording = report['plan']['recording']
    assert recording['image_topic'] == REALSENSE['image_topic']
    assert recording['extrinsics_from']['source'] == '/tf_static'
    assert recording['camera_image_size'] == [WIDTH, HEIGHT]
    for row in ('no memory', 'all three, contrastive'):
        values = report['comparison'][row]
        assert np.isfinite(values['before']['psnr_all']) and \
            np.isfinite(values['after']['ssim_all'])
        assert values['change']['psnr_all'] == pytest.approx(
            values['after']['psnr_all'] - values['before']['psnr_all'])
    card = (out / 'MODEL_CARD.md').read_text()
    assert REALSENSE['depth_topic'] in card and '| all three, contrastive | base |' in card
    assert 'budget | 2 steps' in card

    # The fine-tune changed the shipped weights, and the node's configuration loads them.
    trained = load_file(str(out / WEIGHTS_FILE))
    shipped = load_file(str(default_checkpoint_dir() / WEIGHTS_FILE))
    assert any(not np.array_equal(trained[k], shipped[k]) for k in shipped)
    model = WorldModel(model_config_from(dict(PARAMETERS, checkpoint=str(out), device='cpu',
                                              finetune=False)))
    try:
        assert str(model.checkpoint_dir) == str(out)
        episode = camera_episode(2)
        model.observe(Frame(rgb=episode.rgb[0], depth=episode.depth[0], pose=episode.pose[0],
                            K=episode.K, stamp=int(episode.stamp[0])))
        assert model.imagine(episode.pose[1:], steps=1).images.shape == (1, 1, 64, 64, 3)
    finally:
        model.close()


def test_a_rerun_resumes_training_and_reuses_the_split_and_evaluations(tmp_path, capsys):
    bag, out = record(tmp_path / 'bag'), tmp_path / 'home'
    assert adapt(bag, out, '--steps', '1') == 0
    before = next((out / 'adapt' / 'eval' / 'before' / 'per_episode').glob('*.json'))
    stamp = before.stat().st_mtime_ns, (out / 'adapt' / 'plan.json').stat().st_mtime_ns
    assert adapt(bag, out, '--steps', '2') == 0
    state = json.loads((out / 'adapt' / 'train' / 'last' / 'training.json').read_text())
    assert state['step'] == 2
    # One history across both runs: validated before training and at the end of each run.
    assert [h['step'] for h in state['history'] if 'val_loss' in h] == [0, 1, 2]
    assert (before.stat().st_mtime_ns, (out / 'adapt' / 'plan.json').stat().st_mtime_ns) \
        == stamp
    assert json.loads((out / 'report.json').read_text())['training']['steps'] == 2
    evaluated = sorted(p.name for p in (out / 'adapt' / 'eval').iterdir())
    assert evaluated == ['after_step_0000001', 'after_step_0000002', 'before']
    # The budget is spent: the same command trains no further.
    assert adapt(bag, out, '--steps', '2') == 0
    assert json.loads((out / 'report.json').read_text())['training']['steps'] == 2
    capsys.readouterr()
    # Other settings into the same directory are refused, naming what differs.
    assert adapt(bag, out, '--steps', '2', '--horizon', '3') == 2
    assert 'holds an adaptation of other split' in capsys.readouterr().err


def test_an_rgb_only_camera_adapts_with_no_depth_for_minutes(tmp_path, capsys):
    bag = record(tmp_path / 'bag', topics=('image_topic', 'info_topic', 'odom_topic', 'tf'))
    # A time budget alone (no --steps): training stops once it is spent, after >= 1 step.
    assert adapt(bag, tmp_path / 'home', '--minutes', '0.001', '--no-depth') == 0
    report = json.loads((tmp_path / 'home' / 'report.json').read_text())
    assert report['training']['steps'] >= 1 and report['training']['budget_steps'] == 0
    assert report['plan']['recording']['depth_topic'] is None
    assert sorted(report['comparison']) == ['+ episodic', 'no memory']
    assert '| + episodic | base |' in capsys.readouterr().out


def test_replay_of_the_base_domain_is_mixed_in_and_recorded(tmp_path, capsys):
    replay = tmp_path / 'maze9'
    for seed in range(2):
        save_episode(replay / f'ep_{seed}.npz', maze_episode(24, seed=seed))
    out = tmp_path / 'home'
    assert adapt(record(tmp_path / 'bag'), out, '--steps', '1', '--replay', str(replay),
                 '--replay-fraction', '0.5') == 0
    record_ = json.loads((out / 'report.json').read_text())['training']['replay']
    # Each of the 2 episodes gives 24 - 8 windows; half of an epoch is replayed.
    assert record_['windows'] == 32 and record_['fraction'] == 0.5
    assert sorted(record_['episodes']) == [str((replay / f'ep_{s}.npz').resolve())
                                           for s in range(2)]
    assert '50% of each epoch from 32 windows of 2 episodes' in \
        (out / 'MODEL_CARD.md').read_text()
    capsys.readouterr()
    for options, expected in ((['--replay', str(tmp_path / 'none')], 'does not exist'),
                              (['--replay', str(tmp_path / 'bag')], 'holds no episodes'),
                              (['--replay', str(replay), '--replay-fraction', '1'],
                               '--replay-fraction must be between 0 and 1')):
        assert adapt(tmp_path / 'bag', tmp_path / 'other', '--steps', '1', *options) == 2
        assert expected in capsys.readouterr().err
        assert not (tmp_path / 'other').exists()


@pytest.mark.parametrize('case,options,expected', [
    ('no matching topics', {'names': {'image_topic': '/cam/img', 'info_topic': '/cam/info',
                                      'depth_topic': '/cam/d', 'odom_topic': '/pose'}},
     ['no colour image topic: none of /camera/color/image_raw,', 'no depth image topic',
      'no camera_info topic', 'no odometry topic', 'The recording has: /cam/d ']),
    ('no odometry', {'topics': ('image_topic', 'depth_topic', 'info_topic')},
     ['no odometry topic: none of /odom, /odometry/filtered', '(name it with --odom-topic)']),
    ('no depth', {'topics': ('image_topic', 'info_topic', 'odom_topic')},
     ['no depth image topic', 'or --no-depth for a camera without depth']),
    ('too few frames', {'frames': 12},
     ['too few frames: the recording gives 12 (2.8 s, one every 0.25 s',
      '1 held-out stretch of 11 frames (4 observed + 2 predicted model frames']),
])
def test_bad_input_stops_before_anything_is_written(tmp_path, capsys, case, options,
                                                    expected):
    options = dict(options)
    bag = record(tmp_path / 'bag', frames=options.pop('frames', 40), **options)
    out = tmp_path / 'home'
    assert adapt(bag, out, '--steps', '2') == 2, case
    error = capsys.readouterr().err
    for text in expected:
        assert text in error
    assert not out.exists()


def test_another_checkpoint_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / 'copy'
    shutil.copytree(default_checkpoint_dir(), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert adapt(record(tmp_path / 'bag'), out, '--steps', '1') == 2
    assert 'holds a checkpoint that mowm adapt did not write' in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_held_out_stretches_are_spread_and_guarded():
    config = StretchConfig(context=60, horizon=20, frame_skip=2, held_out=0.25)
    train, held_out = plan_split(1200, config)
    assert held_out == [(441, 600), (1041, 1200)]      # the end of each half, 159 frames
    # Training frames: all but the held-out stretches and the 40 frames after each.
    assert train == [(0, 441), (640, 1041)]


def test_a_recording_of_separate_runs_is_never_split_across_the_jump():
    """Two bags an hour apart: no held-out or training stretch spans the hour between them."""
    config = StretchConfig(context=60, horizon=20, frame_skip=2, held_out=0.25)
    period = 250_000_000                                   # 4 Hz
    stamps = np.concatenate([np.arange(900) * period,
                             3600 * 10 ** 9 + np.arange(300) * period])
    runs = continuous_runs(stamps, config)
    assert runs == [(0, 900), (900, 1200)]
    train, held_out = plan_split(1200, config, runs)
    assert held_out == [(741, 900), (1041, 1200)]         # one stretch per run, each inside
    assert train == [(0, 741), (900, 1041)]
    for start, stop in train + held_out:
        assert not (start < 900 < stop), f'({start}, {stop}) spans the jump'
    # A run too short for a stretch gets none; the others share them by length.
    stamps = np.concatenate([np.arange(1000) * period, 10 ** 13 + np.arange(100) * period])
    train, held_out = plan_split(1100, config, continuous_runs(stamps, config))
    assert held_out == [(341, 500), (841, 1000)] and train[-1] == (1000, 1100)


def test_too_short_runs_are_named_with_the_images_the_import_left_out():
    config = StretchConfig(context=60, horizon=20, frame_skip=2)
    episode = camera_episode(200)
    episode.stamp[100:] += 3600 * 10 ** 9                  # two runs of 100 frames
    episode.meta['counts'] = {'images_outside_odometry': 36, 'images_without_depth': 0}
    with pytest.raises(SplitError, match=r'in 2 separate runs .* the longest 100 frames.*'
                       r"left out images: 36 outside the odometry's span or in its gaps\)"):
        split_recording(episode, config)
