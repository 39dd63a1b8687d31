import hashlib
import json
import logging
import os
from pathlib import Path

from memory_scenes import known_memories
from mowm_ros.memory.store import MANIFEST, MemoryStore, SnapshotError
import numpy as np
import pytest
import torch


def assert_same_arrays(actual, expected):
    assert actual.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)


def assert_snapshot_holds(snapshot, seed):
    spatial, episodic, adapter = known_memories(seed)
    assert snapshot.meta['seed'] == seed
    assert_same_arrays(snapshot.spatial, spatial.to_arrays())
    assert_same_arrays(snapshot.episodic, episodic.to_arrays())
    assert snapshot.adapter.keys() == adapter.keys()
    for name, tensor in adapter.items():
        assert torch.equal(snapshot.adapter[name], tensor)


def save_seed(store, seed):
    spatial, episodic, adapter = known_memories(seed)
    return store.save(spatial, episodic, adapter, extra_meta={'seed': seed})


def test_round_trip_rebuilds_equal_memories(tmp_path):
    store = MemoryStore(tmp_path / 'store')
    assert store.load() is None and store.rejected == []
    path = save_seed(store, 0)
    snapshot = store.load()
    assert snapshot.path == path and snapshot.sequence == 1 and snapshot.rejected == []
    assert_snapshot_holds(snapshot, 0)
    spatial, episodic, _ = known_memories(0)
    assert_same_arrays(snapshot.spatial_memory().to_arrays(), spatial.to_arrays())
    assert_same_arrays(snapshot.episodic_buffer().to_arrays(), episodic.to_arrays())
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest['format_version'] == 1
    assert set(manifest['files']) == {'spatial.npz', 'episodic.npz', 'adapter.safetensors'}
    assert all(len(entry['sha256']) == 64 for entry in manifest['files'].values())


def test_parts_are_optional(tmp_path):
    store = MemoryStore(tmp_path)
    spatial, _, _ = known_memories(2)
    store.save(spatial=spatial)
    snapshot = store.load()
    assert snapshot.episodic is None and snapshot.adapter is None
    assert snapshot.episodic_buffer() is None and len(snapshot.spatial_memory()) == len(spatial)


def test_old_snapshots_are_pruned_but_the_previous_one_is_kept(tmp_path):
    store = MemoryStore(tmp_path, keep=2)
    spatial, episodic, _ = known_memories(0, points=100, keyframes=2)
    paths = [store.save(spatial, episodic, extra_meta={'n': n}) for n in range(4)]
    assert store.snapshot_paths() == paths[:1:-1]
    assert not any(p.name.startswith('.') for p in (tmp_path / 'snapshots').iterdir())
    with pytest.raises(ValueError, match='keep'):
        MemoryStore(tmp_path, keep=1)


def flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[:-100])


def rewrite_manifest(path, change):
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize('damage, reason', [
    (lambda s: flip_byte(s / 'spatial.npz'), 'checksum or size mismatch for spatial.npz'),
    (lambda s: truncate(s / 'episodic.npz'), 'checksum or size mismatch for episodic.npz'),
    (lambda s: flip_byte(s / 'adapter.safetensors'), 'adapter.safetensors'),
    (lambda s: (s / 'episodic.npz').unlink(), 'missing file episodic.npz'),
    (lambda s: (s / MANIFEST).unlink(), 'missing manifest.json'),
    (lambda s: (s / MANIFEST).write_text('{"format": '), 'not readable JSON'),
    (lambda s: rewrite_manifest(s / MANIFEST, lambda m: m.update(format_version=2)),
     'newer than the supported 1'),
    (lambda s: rewrite_manifest(s / MANIFEST, lambda m: m.update(sequence=7)), 'sequence'),
    (lambda s: rewrite_manifest(s / MANIFEST, lambda m: m['files'].update(
        {'../../escape.npz': {'sha256': '0' * 64, 'bytes': 1}})), 'outside the snapshot'),
])
def test_a_damaged_snapshot_is_reported_and_the_previous_one_is_used(
        tmp_path, damage, reason, caplog):
    store = MemoryStore(tmp_path)
    save_seed(store, 0)
    newest = save_seed(store, 1)
    damage(newest)
    with caplog.at_level(logging.WARNING, logger='mowm_ros.memory.store'):
        snapshot = store.load()
    assert_snapshot_holds(snapshot, 0)
    assert [r.path for r in snapshot.rejected] == [newest] == [r.path for r in store.rejected]
    assert reason in snapshot.rejected[0].reason and str(newest) in snapshot.rejected[0].reason
    assert str(newest) in caplog.text and reason in caplog.text


def test_valid_checksums_over_malformed_arrays_are_rejected(tmp_path):
    store = MemoryStore(tmp_path)
    save_seed(store, 0)
    newest = save_seed(store, 1)
    spatial, _, _ = known_memories(1)
    arrays = spatial.to_arrays()
    arrays['rgb'] = arrays['rgb'].astype(np.float32)
    (newest / 'spatial.npz').unlink()
    np.savez(newest / 'spatial.npz', **arrays)
    data = (newest / 'spatial.npz').read_bytes()

    def update(manifest):
        manifest['files']['spatial.npz'] = {'sha256': hashlib.sha256(data).hexdigest(),
                                            'bytes': len(data)}

    rewrite_manifest(newest / MANIFEST, update)
    snapshot = store.load()
    assert snapshot.meta['seed'] == 0
    assert "'rgb' must be uint8" in snapshot.rejected[0].reason


def test_no_valid_snapshot_gives_none_with_every_reason(tmp_path):
    store = MemoryStore(tmp_path)
    first, second = save_seed(store, 0), save_seed(store, 1)
    flip_byte(first / 'spatial.npz')
    (second / MANIFEST).unlink()
    assert store.load() is None
    assert [r.path for r in store.rejected] == [second, first]


def test_leftovers_of_a_crashed_writer_are_ignored_then_removed(tmp_path):
    store = MemoryStore(tmp_path)
    save_seed(store, 0)
    leftover = tmp_path / 'snapshots' / '.tmp-00000002-999'
    leftover.mkdir()
    (leftover / 'spatial.npz').write_bytes(b'half written')
    assert store.load().meta['seed'] == 0
    save_seed(store, 1)
    assert not leftover.exists() and store.load().meta['seed'] == 1


def test_writes_outside_the_store_are_refused(tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    store_dir = tmp_path / 'store'
    store_dir.mkdir()
    os.symlink(outside, store_dir / 'snapshots')
    spatial, _, _ = known_memories(0, points=10, keyframes=2)
    with pytest.raises(SnapshotError, match='outside the store'):
        MemoryStore(store_dir).save(spatial)
    assert list(outside.iterdir()) == []


def test_a_snapshot_linked_from_outside_is_rejected(tmp_path):
    elsewhere = MemoryStore(tmp_path / 'elsewhere')
    foreign = save_seed(elsewhere, 5)
    store = MemoryStore(tmp_path / 'store')
    save_seed(store, 0)
    link = store.snapshots_directory / '00000009-20300101T000000Z'
    os.symlink(foreign, link)
    snapshot = store.load()
    assert snapshot.meta['seed'] == 0
    assert 'link' in snapshot.rejected[0].reason and snapshot.rejected[0].path == link


def test_bad_arguments_write_nothing(tmp_path):
    store = MemoryStore(tmp_path / 'store')
    spatial, _, _ = known_memories(0, points=10, keyframes=2)
    with pytest.raises(ValueError, match='JSON'):
        store.save(spatial, extra_meta={'when': object()})
    with pytest.raises(ValueError, match='adapter_weights'):
        store.save(spatial, adapter_weights={'w': np.zeros(3)})
    assert not Path(tmp_path / 'store').exists() or store.snapshot_paths() == []
