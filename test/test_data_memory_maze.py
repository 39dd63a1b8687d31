"""Real Memory Maze episodes (dm_control on MuJoCo, rendered with MUJOCO_GL=osmesa)."""

import logging
import os

from mowm_ros import geometry, render
from mowm_ros.cli import main
from mowm_ros.data.dataset import DatasetConfig, EpisodeDataset
from mowm_ros.data.episode import load_episode, save_episode
from mowm_ros.data.exploration import FORWARD, FORWARD_LEFT, FORWARD_RIGHT
from mowm_ros.data.generate import generate_dataset, ParameterMismatch
from mowm_ros.data.maze import MazeGrid
from mowm_ros.data.maze_env import CONTROL_PERIOD_NS, generate_episode, GenerationConfig
from mowm_ros.data.revisit import revisit_labels
import numpy as np
import pytest

pytest.importorskip('memory_maze')

# Bounds of the geometry test. Memory Maze's only light is MuJoCo's headlight, which turns
# with the camera, so a surface's shade changes with the heading: colours are compared on pairs
# whose heading changes by less than SAME_HEADING (then lighting is constant), in 8-bit levels
# on pixels covered by the re-projection that agree with the true depth. Depth is compared on
# every pair, turns included.
SAME_HEADING = 0.05         # rad
MEAN_COLOUR_MAE = 4.0       # mean over those pairs (measured 2.5-2.8)
PAIR_COLOUR_MAE = 12.0      # any one pair (measured up to 8.4)
DEPTH_AGREEMENT = 0.02      # median relative depth error of every re-projection


@pytest.fixture(scope='module')
def episodes():
    """Generate a 9x9 episode (seed 0, 100 steps) and an 11x11 one (seed 1, 80 steps)."""
    return {9: generate_episode(0, GenerationConfig(maze_size=9, steps=100))[0],
            11: generate_episode(1, GenerationConfig(maze_size=11, steps=80))[0]}


def test_episode_holds_what_the_issue_asks_for(episodes):
    episode = episodes[9]
    frames = len(episode)
    assert frames == 100
    assert episode.rgb.shape == (frames, 64, 64, 3) and episode.depth.shape == (frames, 64, 64)
    np.testing.assert_array_equal(episode.stamp, np.arange(frames) * CONTROL_PERIOD_NS)
    assert episode.action[0] == -1 and set(episode.action[1:]) <= set(range(6))
    np.testing.assert_allclose(episode.K, geometry.intrinsics_from_fovy(80.0, 64, 64))
    valid = np.isfinite(episode.depth)
    assert valid.mean() > 0.5 and np.all(episode.depth[valid] > 0)
    assert np.all(episode.depth[valid] <= 15.0)
    extras = episode.extras
    assert extras['agent_pos'].shape == (frames, 2) and extras['agent_dir'].shape == (frames, 2)
    assert extras['maze_layout'].shape == (9, 9) and extras['maze_layout'].dtype == np.uint8
    assert extras['revisit'].dtype == bool and extras['revisit_overlap'].shape == (frames,)
    for rotation in episode.pose[:, :3, :3]:
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
    meta = episode.meta
    assert meta['seed'] == 0 and meta['maze_size'] == 9 and meta['frame_skip'] == 1
    assert meta['generator_version'] and meta['params']['exploration']['p_return'] > 0


@pytest.mark.parametrize('size', [9, 11])
def test_maze_cells_map_to_the_world_like_the_agent(episodes, size):
    episode = episodes[size]
    grid = MazeGrid(episode.extras['maze_layout'])
    agent_world = grid.world_from_grid(episode.extras['agent_pos'])
    direction = episode.extras['agent_dir']
    # The egocentric camera sits a fixed distance ahead of the ball's centre.
    ahead = np.einsum('ti,ti->t', episode.pose[:, :2, 3] - agent_world, direction)
    assert 0.05 < ahead.mean() < 0.3 and np.ptp(ahead) < 0.02
    side = episode.pose[:, :2, 3] - agent_world - ahead[:, None] * direction
    assert np.abs(side).max() < 0.01
    yaw = geometry.planar_pose(episode.pose)[:, 2]
    error = geometry.wrap_angle(yaw - np.arctan2(direction[:, 1], direction[:, 0]))
    assert np.abs(error).max() < 1e-3
    for position in episode.extras['agent_pos']:
        assert grid.is_free(grid.cell_of_grid(position))


def reproject(episode, t, k, pose=None):
    """Render frame t's unprojected depth, coloured by frame t, from frame t + k's camera."""
    pose = episode.pose if pose is None else pose
    size = episode.rgb.shape[2]
    points, valid = geometry.unproject_depth(episode.depth[t], episode.K, pose[t])
    view = render.render_points(points, episode.rgb[t][valid], pose[t + k], episode.K, size,
                                size)
    truth = episode.depth[t + k]
    covered = view.mask & np.isfinite(truth)
    relative = np.abs(view.depth[covered] - truth[covered]) / truth[covered]
    agree = covered & (np.abs(view.depth - truth) < 0.05 + 0.05 * truth)
    return view, covered, relative, agree


@pytest.mark.parametrize('size', [9, 11])
def test_geometry_conventions_by_reprojection(episodes, size):
    """Unproject t with its pose and K, re-project into t + k: depth and colours match."""
    episode = episodes[size]
    errors, shift_errors, checked = [], np.zeros((3, 3)), 0
    for k in (1, 2, 3, 4):
        for t in range(0, len(episode) - k, 3):
            view, covered, relative, agree = reproject(episode, t, k)
            if covered.mean() < 0.05:
                continue
            checked += 1
            assert np.median(relative) < DEPTH_AGREEMENT, (t, k)
            if abs(geometry.relative_motion(episode.pose[t], episode.pose[t + k])[2]) \
                    > SAME_HEADING:
                continue
            target = episode.rgb[t + k].astype(float)
            error = np.abs(view.rgb[agree].astype(float) - target[agree]).mean()
            assert error < PAIR_COLOUR_MAE, (t, k, error)
            errors.append(error)
            inner = agree.copy()
            inner[[0, -1]] = inner[:, [0, -1]] = False
            for dv in (-1, 0, 1):
                for du in (-1, 0, 1):
                    shifted = np.roll(target, (dv, du), axis=(0, 1))
                    shift_errors[dv + 1, du + 1] += np.abs(view.rgb[inner] - shifted[inner]).mean()
    assert checked >= 80 and len(errors) >= 20
    assert np.mean(errors) < MEAN_COLOUR_MAE
    # Sub-pixel alignment: any one-pixel shift of the true image matches worse.
    assert np.argmin(shift_errors) == 4, shift_errors

    # The same check with MuJoCo's camera axes taken as optical ones fails outright.
    wrong = episode.pose.copy()
    wrong[:, :3, :3] = episode.pose[:, :3, :3] @ np.diag([1.0, -1.0, -1.0])
    medians = [np.median(reproject(episode, t, 1, wrong)[2]) for t in range(0, 60, 9)]
    assert np.nanmedian(medians) > 0.1


def test_generation_is_deterministic_per_seed(episodes):
    again, _ = generate_episode(0, GenerationConfig(maze_size=9, steps=40))
    first = episodes[9]
    for name in ('rgb', 'depth', 'pose', 'action', 'stamp'):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name)[:40])
    for name in ('agent_pos', 'revisit', 'revisit_overlap'):
        np.testing.assert_array_equal(again.extras[name], first.extras[name][:40])


def test_policy_drives_through_the_real_maze(episodes):
    episode = episodes[9]
    grid = MazeGrid(episode.extras['maze_layout'])
    cells = [grid.cell_of_grid(p) for p in episode.extras['agent_pos']]
    assert len(set(cells)) >= 5
    assert np.isin(episode.action[1:], [FORWARD, FORWARD_LEFT, FORWARD_RIGHT]).mean() > 0.4
    # Not staring at walls: few frames whose median depth is under half a metre.
    median_depth = np.nanmedian(episode.depth.reshape(len(episode), -1), axis=1)
    assert (median_depth < 0.5).mean() < 0.1


def test_revisit_labels_find_a_replayed_stretch(episodes):
    episode = episodes[9]
    assert not episode.extras['revisit'][:41].any()      # nothing is 40 steps old yet
    source = episode.extras['revisit_source']
    labelled = source >= 0
    assert np.all(source[labelled] <= np.nonzero(labelled)[0] - 40)
    # The first 30 frames shown again 50 steps later are revisits of themselves.
    frames = np.r_[0:30, 0:30]
    clock = np.r_[0:30, 80:110]
    revisit, overlap, source = revisit_labels(episode.depth[frames], episode.pose[frames],
                                              episode.K, clock, 40)
    assert not revisit[:30].any() and revisit[30:].all()
    np.testing.assert_allclose(overlap[30:], 1.0)


def test_dataset_over_real_episodes(episodes, tmp_path):
    save_episode(tmp_path / 'ep.npz', episodes[9])
    dataset = EpisodeDataset(tmp_path, DatasetConfig())
    assert len(dataset) == 100 - 8
    samples = [dataset[i] for i in range(0, len(dataset), 4)]
    coverage = np.mean([float(s['render_mask'].mean()) for s in samples])
    assert coverage > 0.3, coverage


@pytest.mark.slow
def test_generate_resumes_and_regenerates_corrupt_files(tmp_path, caplog):
    config = GenerationConfig(steps=12, frame_skip=2, camera_size=96)
    first = generate_dataset(tmp_path, [0], config, workers=1, progress=False)
    assert [s['seed'] for s in first.generated] == [0]
    path0 = tmp_path / 'ep_09x09_s000000.npz'
    episode = load_episode(path0)
    assert len(episode) == 6 and episode.extras['actions_between'].shape == (6, 2)
    np.testing.assert_array_equal(episode.extras['env_step'], np.arange(0, 12, 2))
    assert episode.extras['rgb_camera'].shape == (6, 96, 96, 3)
    assert episode.extras['depth_camera'].shape == (6, 96, 96)
    np.testing.assert_allclose(episode.extras['K_camera'],
                               geometry.intrinsics_from_fovy(80.0, 96, 96))
    modified = os.stat(path0).st_mtime_ns

    second = generate_dataset(tmp_path, [0, 1, 2], config, workers=2, progress=False)
    assert second.skipped == [0] and sorted(s['seed'] for s in second.generated) == [1, 2]
    assert os.stat(path0).st_mtime_ns == modified

    path1 = tmp_path / 'ep_09x09_s000001.npz'
    path1.write_bytes(path1.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING):
        third = generate_dataset(tmp_path, [0, 1, 2], config, workers=1, progress=False)
    assert 'ep_09x09_s000001.npz' in caplog.text
    assert [name for name, _ in third.replaced] == ['ep_09x09_s000001.npz']
    assert [s['seed'] for s in third.generated] == [1] and len(load_episode(path1)) == 6
    assert not list(tmp_path.glob('.*.tmp'))

    with pytest.raises(ParameterMismatch, match=r'ep_09x09_s000000\.npz .*steps: 12 -> 14'):
        generate_dataset(tmp_path, [0], GenerationConfig(steps=14, frame_skip=2,
                                                         camera_size=96), progress=False)
    assert main(['data', 'stats', str(tmp_path)]) == 0
