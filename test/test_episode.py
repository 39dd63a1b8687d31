import json

from episode_fixtures import synthetic_episode
from mowm_ros.data.episode import (EpisodeError, iter_episodes, load_episode, save_episode,
                                   sidecar_path)
import numpy as np
import pytest


def test_round_trip_keeps_every_array_and_the_sidecar(tmp_path):
    episode = synthetic_episode()
    path = tmp_path / 'ep_000.npz'
    save_episode(path, episode)
    loaded = load_episode(path)
    for name in ('rgb', 'depth', 'pose', 'K', 'stamp', 'action'):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(episode, name))
    np.testing.assert_array_equal(loaded.extras['revisit'], episode.extras['revisit'])
    meta = json.loads(sidecar_path(path).read_text())
    assert meta['seed'] == 0 and meta['frames'] == 6 and meta['format_version'] == 1
    assert not list(tmp_path.glob('*.tmp'))


def test_truncated_file_is_named_and_skipped(tmp_path, caplog):
    good, bad = tmp_path / 'a.npz', tmp_path / 'b.npz'
    save_episode(good, synthetic_episode(seed=1))
    save_episode(bad, synthetic_episode(seed=2))
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2])
    with pytest.raises(EpisodeError, match='b.npz: truncated or corrupt'):
        load_episode(bad)
    loaded = list(iter_episodes(tmp_path))
    assert [p.name for p, _ in loaded] == ['a.npz']
    assert 'b.npz' in caplog.text


def test_pickled_arrays_are_refused(tmp_path):
    path = tmp_path / 'evil.npz'
    save_episode(path, synthetic_episode())
    arrays = dict(np.load(path))
    arrays['payload'] = np.array([{'x': 1}], dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(EpisodeError, match='evil.npz'):
        load_episode(path)


def test_missing_sidecar_and_bad_shapes(tmp_path):
    path = tmp_path / 'ep.npz'
    save_episode(path, synthetic_episode())
    sidecar_path(path).unlink()
    with pytest.raises(EpisodeError, match='missing sidecar'):
        load_episode(path)
    episode = synthetic_episode()
    episode.pose = episode.pose[:-1]
    with pytest.raises(EpisodeError, match='pose must be'):
        save_episode(tmp_path / 'x.npz', episode)
    episode = synthetic_episode()
    episode.pose[2, 0, 3] = np.nan
    with pytest.raises(EpisodeError, match='NaN'):
        save_episode(tmp_path / 'y.npz', episode)
