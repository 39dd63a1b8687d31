"""The one atomic writer: old or new file, never a partial one, and no leftovers."""

import json
import os
import stat

from mowm_ros.atomic import atomic_write, atomic_write_bytes
import pytest


def test_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / 'deeper' / 'result.json'
    atomic_write(path, lambda f: json.dump({'a': 1}, f), 'w')
    atomic_write_bytes(path, b'{"a": 2}')
    assert json.loads(path.read_text()) == {'a': 2}
    assert os.listdir(path.parent) == ['result.json']


def test_a_failing_writer_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    path = tmp_path / 'episode.npz'
    path.write_bytes(b'old')

    def fail_halfway(stream):
        stream.write(b'partial')
        raise RuntimeError('disk full')

    with pytest.raises(RuntimeError, match='disk full'):
        atomic_write(path, fail_halfway)
    assert path.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['episode.npz']


def test_permissions_are_those_open_would_give(tmp_path):
    previous = os.umask(0o027)
    try:
        path = atomic_write_bytes(tmp_path / 'weights.safetensors', b'x')
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_an_unknown_mode_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w', got 'a'"):
        atomic_write(tmp_path / 'x', lambda f: None, 'a')
    assert not os.listdir(tmp_path)
