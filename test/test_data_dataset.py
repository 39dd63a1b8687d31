import logging

from episode_fixtures import synthetic_episode
from mowm_ros import geometry
from mowm_ros.data.cloud import build_cloud
from mowm_ros.data.dataset import (DatasetConfig, EpisodeDataset, is_validation,
                                   ReplayMix, split_by_seed)
from mowm_ros.data.episode import save_episode
import numpy as np
import pytest
import torch


def wall_episode(frames=24, seed=0, size=(32, 32)):
    """Make a camera slide along a textured wall 2 m ahead: each frame sees most of the last."""
    episode = synthetic_episode(frames=frames, size=size, seed=seed)
    episode.pose = np.stack([geometry.camera_pose_from_planar(0.0, 0.1 * i, 0.0, 0.5)
                             for i in range(frames)])
    episode.depth = np.full(episode.depth.shape, 2.0, np.float32)
    return episode


def write(directory, episodes):
    for i, episode in enumerate(episodes):
        save_episode(directory / f'ep_{i:03d}.npz', episode)


def test_samples_have_the_documented_shapes_ranges_and_motions(tmp_path):
    episode = wall_episode(frames=20, size=(32, 24))
    write(tmp_path, [episode])
    dataset = EpisodeDataset(tmp_path, DatasetConfig(context=4, frame_skip=2, size=16))
    assert len(dataset) == 20 - 8
    sample = dataset[3]
    target = int(sample['frame'])
    assert target == 11
    assert sample['context'].shape == (4, 3, 16, 16) and sample['target'].shape == (3, 16, 16)
    assert sample['context'].dtype == torch.float32
    assert -1.0 <= float(sample['context'].min()) and float(sample['context'].max()) <= 1.0
    assert sample['render_rgb'].shape == (3, 16, 16)
    assert sample['render_mask'].shape == (1, 16, 16)
    assert set(torch.unique(sample['render_mask']).tolist()) <= {0.0, 1.0}
    frames = [3, 5, 7, 9, 11]
    np.testing.assert_allclose(sample['motions'].numpy(), geometry.relative_motion(
        episode.pose[frames[:-1]], episode.pose[frames[1:]]), atol=1e-6)
    np.testing.assert_allclose(sample['abs_pose'].numpy(),
                               geometry.absolute_pose_features(episode.pose[frames]), atol=1e-6)
    # The camera slides 0.1 m to its left per frame: 0.2 m per model frame.
    np.testing.assert_allclose(sample['motions'][-1].numpy(), [0.0, 0.2, 0.0], atol=1e-6)
    assert sample['render_mask'].mean() > 0.5


def test_render_uses_only_frames_before_the_target(tmp_path):
    episode = wall_episode()
    target = 16                 # memory may use frames <= 14 (one model frame before)
    hidden = episode.depth.copy()
    hidden[:15] = np.nan        # only frames >= 15 have depth: they must contribute nothing
    changed = wall_episode()
    changed.rgb[15:] = 255 - changed.rgb[15:]    # frames after the memory limit differ
    changed.depth[15:] = 1.0
    only_late = wall_episode()
    only_late.depth = hidden
    write(tmp_path, [episode, changed, only_late])
    dataset = EpisodeDataset(tmp_path, DatasetConfig(context=4, frame_skip=2, size=32))
    assert dataset.memory_last_frame(target) == 14
    renders = [dataset.render_memory(number, target) for number in range(3)]
    assert renders[0].coverage > 0.5
    np.testing.assert_array_equal(renders[1].rgb, renders[0].rgb)
    np.testing.assert_array_equal(renders[1].mask, renders[0].mask)
    assert renders[2].coverage == 0.0
    # The cloud's frame bookkeeping: every rendered point was first seen before the target.
    cloud = dataset.episodes[0].cloud
    assert cloud.first_frame[cloud.select(14)].max() <= 14
    assert len(cloud.select(-1)) == 0


def test_cloud_keeps_the_first_observation_of_each_voxel():
    episode = wall_episode(frames=3)
    episode.rgb[1:] = 7
    cloud = build_cloud(episode.rgb, episode.depth, episode.pose, episode.K)
    first_seen = cloud.first_frame == 0
    assert first_seen.any()
    assert not np.all(cloud.colors[first_seen] == 7)
    assert np.all(cloud.colors[~first_seen] == 7)


def test_revisit_only_corrupt_skipped_and_loader(tmp_path, caplog):
    episode = wall_episode()
    episode.extras['revisit'] = np.arange(len(episode)) % 3 == 0
    write(tmp_path, [episode, wall_episode(seed=1)])
    broken = tmp_path / 'ep_001.npz'
    broken.write_bytes(broken.read_bytes()[:100])
    with caplog.at_level(logging.WARNING):
        dataset = EpisodeDataset(tmp_path, DatasetConfig(revisit_only=True, size=32))
    assert 'ep_001.npz' in caplog.text
    assert len(dataset.episodes) == 1
    assert all(bool(dataset[i]['revisit']) for i in range(len(dataset)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=0)
    batch = next(iter(loader))
    assert batch['context'].shape == (4, 4, 3, 32, 32)


def test_split_by_seed_is_stable_and_disjoint(tmp_path):
    seeds = range(2000)
    val = [s for s in seeds if is_validation(s, 0.1)]
    assert 150 < len(val) < 250
    for seed in range(5):
        episode = synthetic_episode(frames=2, seed=seed)
        save_episode(tmp_path / f'ep_{seed}.npz', episode)
    train, val = split_by_seed(sorted(tmp_path.glob('*.npz')), val_fraction=0.4)
    assert sorted(train + val) == sorted(tmp_path.glob('*.npz'))
    assert not set(train) & set(val)
    assert split_by_seed(sorted(tmp_path.glob('*.npz')), 0.4) == (train, val)


@pytest.mark.parametrize('frames', [8, 9])
def test_episodes_too_short_for_a_window_give_no_samples(tmp_path, frames):
    write(tmp_path, [wall_episode(frames=frames)])
    dataset = EpisodeDataset(tmp_path, DatasetConfig(context=4, frame_skip=2, size=32))
    assert len(dataset) == frames - 8


def test_replay_mix_adds_the_asked_share_of_replayed_windows(tmp_path):
    (tmp_path / 'new').mkdir()
    (tmp_path / 'old').mkdir()
    write(tmp_path / 'new', [wall_episode(frames=24, seed=1)])
    write(tmp_path / 'old', [wall_episode(frames=14, seed=2), wall_episode(frames=14, seed=3)])
    config = DatasetConfig(context=2, frame_skip=1, size=16)
    new, old = EpisodeDataset(tmp_path / 'new', config), EpisodeDataset(tmp_path / 'old', config)
    mix = ReplayMix(new, old, 0.25)
    assert len(new) == 22 and len(mix) == 22 + 7      # 7 of 29 windows replayed (~25%)
    assert mix.config is new.config
    for i in range(len(new)):
        assert torch.equal(mix[i]['target'], new[i]['target'])
    torch.manual_seed(0)
    replayed = [mix[i] for i in range(len(new), len(mix))]
    old_targets = [old[i]['target'] for i in range(len(old))]
    for sample in replayed:
        assert int(sample['episode']) in (1, 2)       # after the new data's one episode
        assert any(torch.equal(sample['target'], t) for t in old_targets)
    assert len({int(s['seed']) for s in replayed}) == 2   # both old episodes are drawn
    with pytest.raises(IndexError):
        mix[len(mix)]
    assert len(ReplayMix(new, old, 0.0)) == len(new)
    with pytest.raises(ValueError, match='replay fraction must be in'):
        ReplayMix(new, old, 1.0)
    empty = EpisodeDataset([], config)
    with pytest.raises(ValueError, match='hold no training windows'):
        ReplayMix(new, empty, 0.5)
