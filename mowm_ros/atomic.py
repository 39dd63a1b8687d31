"""
Crash-safe writes: a reader sees the old file or the new one, never a partial one.

``atomic_write`` writes into a temporary file in the destination's directory (named
``.<name>.<random>.tmp``, so leftovers of a killed process are recognisable), fsyncs it, gives
it the permissions ``open()`` would, renames it over the destination and fsyncs the directory
so the rename itself survives a power cut. ``write_synced`` and ``sync_directory`` are the
pieces for writers that build a whole directory before renaming it (memory snapshots).
"""

import os
from pathlib import Path
import tempfile
import typing


def atomic_write(path, write: typing.Callable, mode: str = 'wb') -> Path:
    """
    Write ``path`` through ``write(file)`` (a file opened with ``mode``, 'wb' or 'w').

    Parent directories are created. On any error, the temporary file is removed and the
    destination is left as it was.
    """
    if mode not in ('wb', 'w'):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.',
                                         suffix='.tmp')
    try:
        with os.fdopen(handle, mode) as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp creates the file private (0600); give it the permissions open() would.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    sync_directory(path.parent)
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see ``atomic_write``)."""
    return atomic_write(path, lambda stream: stream.write(data))


def write_synced(path, data: bytes) -> None:
    """Create ``path`` (it must not exist) with ``data`` and fsync it."""
    with open(path, 'xb') as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def sync_directory(path) -> None:
    """Fsync a directory, so that the names created or renamed in it are durable."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
