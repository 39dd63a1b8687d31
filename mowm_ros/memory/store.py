"""
Crash-safe snapshots of the memories: spatial cloud, episodic keyframes, adapter weights.

Layout of a store directory::

    <store>/.lock                          held (flock) while a snapshot is written
    <store>/snapshots/00000012-20260101T120000Z/
        manifest.json                      format, version, sequence, sha256 + size per file
        spatial.npz  episodic.npz          numpy arrays, loaded with allow_pickle=False
        adapter.safetensors                the episodic expert's adapter weights (optional)

A snapshot is written into ``snapshots/.tmp-*``, every file and the directory are fsynced, and
only then is it renamed to its final name, so a name in the snapshot pattern always denotes a
complete directory. Nothing is updated in place: the newest snapshot is found by listing. The
newest ``keep`` snapshots survive pruning. ``load`` reads and verifies every file of the
newest snapshot (checksums, format, array structure) before returning anything, and falls back
to the previous one when a check fails, reporting each rejected snapshot with its reason.
"""

from dataclasses import dataclass, field
from datetime import datetime, timezone
import fcntl
import hashlib
import io
import json
import logging
import os
from pathlib import Path
import re
import shutil

from mowm_ros.atomic import sync_directory, write_synced
from mowm_ros.memory.episodic import EpisodicBuffer
from mowm_ros.memory.spatial import SpatialMemory
import numpy as np
import safetensors.torch
import torch

FORMAT = 'mowm_ros.memory_snapshot'
FORMAT_VERSION = 1
MANIFEST = 'manifest.json'
PART_FILES = {'spatial': 'spatial.npz', 'episodic': 'episodic.npz',
              'adapter': 'adapter.safetensors'}
SNAPSHOT_NAME = re.compile(r'^(\d{8})-(\d{8}T\d{6}Z)$')
SAFE_FILE_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')
TEMPORARY_PREFIX = '.tmp-'
TRASH_PREFIX = '.trash-'

log = logging.getLogger(__name__)


class SnapshotError(Exception):
    """A snapshot that cannot be written or read; the message names the path and the reason."""


@dataclass
class RejectedSnapshot:
    path: Path
    reason: str


@dataclass
class Snapshot:
    """A verified snapshot: plain arrays and tensors, ready to rebuild the memories from."""

    path: Path
    sequence: int
    created_utc: str
    meta: dict
    spatial: dict = None        # SpatialMemory.to_arrays() output, or None
    episodic: dict = None       # EpisodicBuffer.to_arrays() output, or None
    adapter: dict = None        # name -> torch.Tensor, or None
    rejected: list = field(default_factory=list)   # newer snapshots skipped, with reasons

    def spatial_memory(self, config=None) -> SpatialMemory | None:
        return None if self.spatial is None else SpatialMemory.from_arrays(self.spatial, config)

    def episodic_buffer(self, config=None) -> EpisodicBuffer | None:
        if self.episodic is None:
            return None
        return EpisodicBuffer.from_arrays(self.episodic, config)


class MemoryStore:
    """Atomic, checksummed snapshots of the memories in one directory (see module doc)."""

    def __init__(self, directory, keep=2) -> None:
        if not isinstance(keep, int) or isinstance(keep, bool) or keep < 2:
            raise ValueError(f'keep must be an integer >= 2 (the previous snapshot is always '
                             f'kept), got {keep!r}')
        self.directory = Path(directory).resolve()
        self.keep = keep
        self.snapshots_directory = self.directory / 'snapshots'
        self.rejected = []   # from the latest load()

    # Writing ---------------------------------------------------------------------------------

    def save(self, spatial=None, episodic=None, adapter_weights=None, extra_meta=None,
             on_stage=None) -> Path:
        """
        Write a new snapshot atomically and prune old ones; return its path.

        ``spatial`` and ``episodic`` are the memories (or None), ``adapter_weights`` a dict of
        tensors (or None) and ``extra_meta`` a JSON-serialisable dict kept in the manifest.
        ``on_stage(name)`` is called after each step (progress logs, crash tests).
        """
        stage = on_stage if on_stage is not None else (lambda name: None)
        payloads = self._serialise(spatial, episodic, adapter_weights)
        meta = dict(extra_meta or {})
        try:
            json.dumps(meta, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f'extra_meta must be JSON-serialisable: {exc}') from None
        stage('serialised')

        self._make_directories()
        with open(self._inside(self.directory / '.lock'), 'a+b') as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            stage('locked')
            self._remove_leftovers()
            sequence = max((seq for seq, _ in self._listing()), default=0) + 1
            created = datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')
            temporary = self._inside(
                self.snapshots_directory / f'{TEMPORARY_PREFIX}{sequence:08d}-{os.getpid()}')
            temporary.mkdir()
            stage('temporary')
            files = {}
            for name, data in payloads.items():
                write_synced(self._inside(temporary / name), data)
                files[name] = {'sha256': hashlib.sha256(data).hexdigest(), 'bytes': len(data)}
                stage(f'wrote:{name}')
            manifest = {'format': FORMAT, 'format_version': FORMAT_VERSION,
                        'sequence': sequence, 'created_utc': created, 'files': files,
                        'parts': {part: name for part, name in PART_FILES.items()
                                  if name in payloads},
                        'meta': meta}
            write_synced(self._inside(temporary / MANIFEST),
                         json.dumps(manifest, indent=2, sort_keys=True).encode())
            sync_directory(temporary)
            stage(f'wrote:{MANIFEST}')
            final = self._inside(self.snapshots_directory / f'{sequence:08d}-{created}')
            os.rename(temporary, final)
            sync_directory(self.snapshots_directory)
            stage('renamed')
            self._prune()
            stage('pruned')
        return final

    @staticmethod
    def _serialise(spatial, episodic, adapter_weights):
        """Encode every part to bytes before anything touches the disk."""
        payloads = {}
        if spatial is not None:
            payloads[PART_FILES['spatial']] = _npz_bytes(spatial.to_arrays())
        if episodic is not None:
            payloads[PART_FILES['episodic']] = _npz_bytes(episodic.to_arrays())
        if adapter_weights is not None:
            if not isinstance(adapter_weights, dict) or not all(
                    isinstance(name, str) and isinstance(value, torch.Tensor)
                    for name, value in adapter_weights.items()):
                raise ValueError('adapter_weights must be a dict of str -> torch.Tensor')
            tensors = {name: value.detach().to('cpu').contiguous().clone()
                       for name, value in adapter_weights.items()}
            payloads[PART_FILES['adapter']] = safetensors.torch.save(tensors)
        return payloads

    def _make_directories(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        self._inside(self.snapshots_directory).mkdir(exist_ok=True)

    def _inside(self, path):
        """Return ``path`` after checking that it resolves inside the store directory."""
        resolved = Path(path).resolve()
        if resolved != self.directory and self.directory not in resolved.parents:
            raise SnapshotError(f'{path}: resolves to {resolved}, outside the store '
                                f'{self.directory}; refusing to write there')
        return Path(path)

    def _remove_leftovers(self):
        """Delete what crashed writers and pruners left (only called with the lock held)."""
        for entry in self.snapshots_directory.iterdir():
            if entry.name.startswith((TEMPORARY_PREFIX, TRASH_PREFIX)):
                self._remove(entry)

    def _remove(self, entry):
        self._inside(entry.parent)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)

    def _prune(self):
        for _, path in self._listing()[self.keep:]:
            trash = self._inside(self.snapshots_directory / f'{TRASH_PREFIX}{path.name}')
            os.rename(path, trash)
            sync_directory(self.snapshots_directory)
            self._remove(trash)

    # Reading ---------------------------------------------------------------------------------

    def _listing(self):
        """(sequence, path) of every entry named like a snapshot, newest first."""
        if not self.snapshots_directory.is_dir():
            return []
        entries = []
        for entry in self.snapshots_directory.iterdir():
            match = SNAPSHOT_NAME.match(entry.name)
            if match:
                entries.append((int(match.group(1)), entry))
        return sorted(entries, key=lambda item: item[0], reverse=True)

    def snapshot_paths(self) -> list:
        """Paths named like complete snapshots, newest first (not yet verified)."""
        return [path for _, path in self._listing()]

    def load(self) -> Snapshot | None:
        """
        Return the newest snapshot that verifies completely, or None when there is none.

        Each newer snapshot that fails verification is logged (warning, with path and reason)
        and listed in the result's ``rejected`` and in ``self.rejected``.
        """
        rejected = []
        for sequence, path in self._listing():
            try:
                snapshot = self._read(sequence, path)
            except SnapshotError as exc:
                log.warning('memory snapshot rejected: %s', exc)
                rejected.append(RejectedSnapshot(path, str(exc)))
                continue
            snapshot.rejected = rejected
            self.rejected = rejected
            return snapshot
        self.rejected = rejected
        if rejected:
            log.warning('no valid memory snapshot in %s (%d rejected)', self.directory,
                        len(rejected))
        return None

    def _read(self, sequence, path):
        def fail(reason):
            raise SnapshotError(f'{path}: {reason}')

        if path.is_symlink() or path.resolve().parent != self.snapshots_directory.resolve():
            fail('snapshot directory is a link or resolves outside the store')
        if not path.is_dir():
            fail('not a directory')
        manifest = _read_manifest(path, fail)
        data = {}
        for name, entry in manifest['files'].items():
            if not isinstance(name, str) or not SAFE_FILE_NAME.match(name) or name == MANIFEST:
                fail(f'manifest lists file {name!r}, a path outside the snapshot directory')
            file_path = path / name
            if file_path.is_symlink() or file_path.resolve().parent != path.resolve():
                fail(f'{name} is a link or resolves outside the snapshot directory')
            try:
                content = file_path.read_bytes()
            except FileNotFoundError:
                fail(f'missing file {name}')
            except OSError as exc:
                fail(f'cannot read {name}: {exc}')
            if not isinstance(entry, dict) or len(content) != entry.get('bytes') \
                    or hashlib.sha256(content).hexdigest() != entry.get('sha256'):
                fail(f'checksum or size mismatch for {name} (corrupt or truncated)')
            data[name] = content
        if manifest['sequence'] != sequence:
            fail(f'manifest sequence {manifest["sequence"]!r} does not match the directory name')

        parts = manifest['parts']
        if not isinstance(parts, dict) or not set(parts) <= set(PART_FILES) \
                or any(PART_FILES[part] != name or name not in data
                       for part, name in parts.items()):
            fail(f'manifest parts {parts!r} do not match its files')
        snapshot = Snapshot(path=path, sequence=sequence, created_utc=manifest['created_utc'],
                            meta=manifest['meta'])
        for part, check in (('spatial', SpatialMemory.check_arrays),
                            ('episodic', EpisodicBuffer.check_arrays)):
            if part in parts:
                arrays = _npz_arrays(data[parts[part]], parts[part], fail)
                try:
                    check(arrays)
                except ValueError as exc:
                    fail(f'{parts[part]}: {exc}')
                setattr(snapshot, part, arrays)
        if 'adapter' in parts:
            try:
                snapshot.adapter = safetensors.torch.load(data[parts['adapter']])
            except Exception as exc:  # noqa: B902 - any decoding failure rejects the file
                fail(f'{parts["adapter"]} is not readable safetensors: {exc}')
        return snapshot


def _read_manifest(path, fail):
    if (path / MANIFEST).is_symlink():
        fail(f'{MANIFEST} is a link')
    try:
        manifest = json.loads((path / MANIFEST).read_bytes())
    except FileNotFoundError:
        fail(f'missing {MANIFEST}')
    except (OSError, ValueError) as exc:
        fail(f'{MANIFEST} is not readable JSON: {exc}')
    if not isinstance(manifest, dict) or manifest.get('format') != FORMAT:
        fail(f'{MANIFEST} is not a {FORMAT} manifest')
    version = manifest.get('format_version')
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        fail(f'format_version {version!r} is ' + ('newer than' if newer else 'not')
             + f' the supported {FORMAT_VERSION}' + ('; upgrade mowm_ros' if newer else ''))
    for key, kind in (('sequence', int), ('created_utc', str), ('files', dict),
                      ('parts', dict), ('meta', dict)):
        if not isinstance(manifest.get(key), kind):
            fail(f'{MANIFEST} field {key!r} is missing or not a {kind.__name__}')
    return manifest


def _npz_bytes(arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _npz_arrays(data, name, fail):
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except Exception as exc:  # noqa: B902 - any decoding failure rejects the file
        fail(f'{name} is not a readable npz without pickle: {exc}')
