"""
Episodes on disk: one compressed ``.npz`` (never pickled) plus a JSON sidecar per episode.

Arrays (T frames):
  rgb     uint8   (T, H, W, 3)
  depth   float32 (T, H, W) metres, NaN or 0 invalid (optional)
  pose    float64 (T, 4, 4) world <- camera, optical convention
  K       float64 (3, 3) intrinsics of ``rgb``
  stamp   int64   (T,) nanoseconds
  action  int64   (T,) or float (T, A): the action taken *before* each frame (optional)
Any other array is kept as an extra (agent position, maze layout, revisit flags, ...).
"""

from dataclasses import dataclass, field
import json
import logging
from pathlib import Path
import zipfile
import zlib

from mowm_ros.atomic import atomic_write
import numpy as np

FORMAT_VERSION = 1
CORE_KEYS = ('rgb', 'depth', 'pose', 'K', 'stamp', 'action')

log = logging.getLogger(__name__)


class EpisodeError(ValueError):
    """An episode that is malformed, truncated or unreadable; the message names the file."""


@dataclass
class Episode:
    rgb: np.ndarray
    pose: np.ndarray
    K: np.ndarray
    stamp: np.ndarray
    depth: np.ndarray = None
    action: np.ndarray = None
    extras: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.rgb)

    @property
    def image_size(self):
        """(width, height) of the RGB frames."""
        return self.rgb.shape[2], self.rgb.shape[1]

    def validate(self, source='episode'):
        """Raise EpisodeError naming ``source`` and the first problem found."""
        def fail(reason):
            raise EpisodeError(f'{source}: {reason}')

        if self.rgb.ndim != 4 or self.rgb.shape[-1] != 3 or self.rgb.dtype != np.uint8:
            fail(f'rgb must be uint8 (T, H, W, 3), got {self.rgb.dtype} {self.rgb.shape}')
        frames, height, width = self.rgb.shape[:3]
        if frames == 0:
            fail('episode has no frames')
        if self.pose.shape != (frames, 4, 4):
            fail(f'pose must be ({frames}, 4, 4), got {self.pose.shape}')
        if not np.all(np.isfinite(self.pose)):
            fail('pose contains NaN or infinite values')
        if self.K.shape != (3, 3) or not np.all(np.isfinite(self.K)) or self.K[0, 0] <= 0:
            fail(f'K must be a finite 3x3 intrinsics matrix, got shape {self.K.shape}')
        if self.stamp.shape != (frames,):
            fail(f'stamp must have shape ({frames},), got {self.stamp.shape}')
        if frames > 1 and np.any(np.diff(self.stamp) <= 0):
            fail('stamps must be strictly increasing')
        if self.depth is not None and self.depth.shape != (frames, height, width):
            fail(f'depth must be ({frames}, {height}, {width}), got {self.depth.shape}')
        if self.action is not None and len(self.action) != frames:
            fail(f'action has {len(self.action)} entries for {frames} frames')
        for name, value in self.extras.items():
            if name in CORE_KEYS:
                fail(f'extra array {name!r} shadows a core array')
            if getattr(value, 'dtype', None) is not None and value.dtype == object:
                fail(f'extra array {name!r} has dtype object, which needs pickle')
        return self


def sidecar_path(path):
    return Path(path).with_suffix('.json')


def save_episode(path, episode):
    """Write ``episode`` atomically: a crash leaves either the old files or the new ones."""
    episode.validate(str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {'rgb': episode.rgb, 'pose': episode.pose.astype(np.float64),
              'K': episode.K.astype(np.float64), 'stamp': episode.stamp.astype(np.int64)}
    if episode.depth is not None:
        arrays['depth'] = episode.depth.astype(np.float32)
    if episode.action is not None:
        arrays['action'] = episode.action
    arrays.update(episode.extras)
    meta = dict(episode.meta, format_version=FORMAT_VERSION, frames=len(episode),
                arrays=sorted(arrays))
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
    atomic_write(sidecar_path(path),
                 lambda f: f.write(json.dumps(meta, indent=2, sort_keys=True).encode()))


def temporary_files(path):
    """Return the temporary files ``save_episode(path, ...)`` is writing or left behind."""
    path = Path(path)
    return [tmp for target in (path, sidecar_path(path))
            for tmp in target.parent.glob(f'.{target.name}.*.tmp')]


def load_episode(path):
    """Load and validate an episode; any problem raises EpisodeError naming the file."""
    path = Path(path)
    meta = read_sidecar(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise EpisodeError(f'{path}: file not found') from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise EpisodeError(f'{path}: truncated or corrupt npz: {exc}') from None
    missing = {'rgb', 'pose', 'K', 'stamp'} - set(arrays)
    if missing:
        raise EpisodeError(f'{path}: missing arrays {sorted(missing)}')
    core = {key: arrays.pop(key, None) for key in CORE_KEYS}
    return Episode(extras=arrays, meta=meta, **core).validate(str(path))


def read_sidecar(path):
    """Return an episode's JSON sidecar; a missing or unreadable one raises EpisodeError."""
    path = Path(path)
    try:
        meta = json.loads(sidecar_path(path).read_text())
    except FileNotFoundError:
        raise EpisodeError(f'{path}: missing sidecar {sidecar_path(path).name}') from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EpisodeError(f'{path}: unreadable sidecar: {exc}') from None
    if not isinstance(meta, dict) or meta.get('format_version') != FORMAT_VERSION:
        version = meta.get('format_version') if isinstance(meta, dict) else None
        raise EpisodeError(f'{path}: format_version {version!r}, expected {FORMAT_VERSION}')
    return meta


def check_episode_file(path):
    """
    Return the sidecar of an episode whose files look complete, without decompressing it.

    Reads the sidecar and the npz's zip directory (a truncated file has none) and checks that
    every array the sidecar lists is there; ``load_episode`` does the full validation.
    """
    path = Path(path)
    meta = read_sidecar(path)
    try:
        with zipfile.ZipFile(path) as archive:
            stored = {name[:-len('.npy')] for name in archive.namelist()}
    except FileNotFoundError:
        raise EpisodeError(f'{path}: file not found') from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise EpisodeError(f'{path}: truncated or corrupt npz: {exc}') from None
    missing = set(meta.get('arrays', ())) - stored
    if missing:
        raise EpisodeError(f'{path}: missing arrays {sorted(missing)}')
    return meta


def episode_paths(directory):
    return sorted(Path(directory).glob('*.npz'))


def iter_episodes(directory):
    """Yield (path, episode) for every readable episode; corrupt ones are logged and skipped."""
    for path in episode_paths(directory):
        try:
            yield path, load_episode(path)
        except EpisodeError as exc:
            log.warning('skipping episode: %s', exc)
