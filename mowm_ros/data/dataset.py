"""
Training samples over episodes: K context frames, the target, motions, poses, memory render.

A sample targets stored frame ``t``; its context is frames ``t - K*s, ..., t - s`` (``s`` the
frame skip between model frames). ``motions[k]`` is the planar motion (dx, dy, dyaw, in the
earlier frame's body frame) from context frame k to the next one, the last from the last
context frame to the target, so the model knows where the target camera is. ``abs_pose`` holds
(x, y, cos yaw, sin yaw) of the context frames and the target in the episode's world frame.
The spatial-memory render is the episode's point cloud restricted to points first seen at
frames ``<= t - memory_gap * s``, drawn from the target camera: never the target or later.
Uncovered render pixels are 0 (mid-grey in [-1, 1]); ``render_mask`` says which are covered.
"""

from dataclasses import dataclass, field
import logging
from pathlib import Path
import zlib

from mowm_ros import geometry
from mowm_ros.data.cloud import build_cloud, CloudConfig, RenderConfig
from mowm_ros.data.episode import episode_paths, EpisodeError, load_episode, read_sidecar
from mowm_ros.data.resize import model_intrinsics, to_model_frame
from mowm_ros.render import empty_view
import numpy as np
import torch
from tqdm import tqdm

log = logging.getLogger(__name__)


@dataclass
class DatasetConfig:
    context: int = 4                 # K context frames
    frame_skip: int = 2              # stored frames between model frames
    size: int = 64                   # model resolution (square)
    spatial_render: bool = True      # build clouds and render the spatial memory
    memory_gap: int = 1              # model frames between the newest memory frame and target
    revisit_only: bool = False       # only targets labelled as revisits
    cloud: CloudConfig = field(default_factory=CloudConfig)
    render: RenderConfig = field(default_factory=RenderConfig)


@dataclass
class _EpisodeData:
    name: str
    seed: int
    rgb: np.ndarray          # uint8 (T, size, size, 3)
    pose: np.ndarray         # float64 (T, 4, 4)
    K: np.ndarray            # intrinsics at the model size
    revisit: np.ndarray      # bool (T,)
    cloud: object = None     # EpisodeCloud, or None without depth / render


def episode_seed(path, meta=None):
    """Return the episode's generator seed, or a stable number from its file name."""
    seed = (meta or {}).get('seed')
    return int(seed) if seed is not None else zlib.crc32(Path(path).name.encode())


def is_validation(seed, val_fraction):
    """Return whether ``seed`` belongs to the validation split (stable as episodes are added)."""
    return ((int(seed) * 2654435761) % (1 << 32)) / float(1 << 32) < val_fraction


def split_by_seed(paths, val_fraction=0.1):
    """Split episode files into (train, val) lists by a hash of each episode's seed."""
    train, val = [], []
    for path in paths:
        try:
            seed = episode_seed(path, read_sidecar(path))
        except EpisodeError as exc:
            log.warning('skipping episode: %s', exc)
            continue
        (val if is_validation(seed, val_fraction) else train).append(Path(path))
    return train, val


def _to_model_range(rgb):
    """Return float32 (..., 3, H, W) in [-1, 1] from uint8 (..., H, W, 3)."""
    array = np.moveaxis(rgb, -1, -3).astype(np.float32)
    return torch.from_numpy(array / 127.5 - 1.0)


class EpisodeDataset(torch.utils.data.Dataset):
    """Windows of context frames + target over a directory (or list) of episodes."""

    def __init__(self, source, config=None, progress=False):
        self.config = config or DatasetConfig()
        paths = episode_paths(source) if isinstance(source, (str, Path)) else list(source)
        self.episodes = []
        self.index = []

        for path in tqdm(paths, desc='episodes', unit='episode', disable=not progress):
            try:
                episode = load_episode(path)
            except EpisodeError as exc:
                log.warning('skipping episode: %s', exc)
                continue
            self._add(path, episode)
        self.index = np.array(self.index, dtype=np.int64).reshape(-1, 2)

    def _add(self, path, episode):
        config = self.config
        span = config.context * config.frame_skip
        if len(episode) <= span:
            log.warning('skipping episode %s: %d frames, a sample needs %d', Path(path).name,
                        len(episode), span + 1)
            return
        size = config.size
        width, height = episode.image_size
        rgb = episode.rgb
        if (width, height) != (size, size):
            rgb = np.stack([to_model_frame(frame, size) for frame in rgb])
        revisit = episode.extras.get('revisit', np.zeros(len(episode), bool)).astype(bool)
        data = _EpisodeData(name=Path(path).name, seed=episode_seed(path, episode.meta),
                            rgb=rgb, pose=episode.pose,
                            K=model_intrinsics(episode.K, width, height, size),
                            revisit=revisit)
        if config.spatial_render and episode.depth is not None:
            data.cloud = build_cloud(episode.rgb, episode.depth, episode.pose, episode.K,
                                     config.cloud)
        number = len(self.episodes)
        self.episodes.append(data)
        targets = np.arange(span, len(episode))
        if config.revisit_only:
            targets = targets[revisit[targets]]
        self.index.extend((number, int(t)) for t in targets)

    def __len__(self):
        return len(self.index)

    def memory_last_frame(self, target):
        """Newest stored frame the spatial memory of ``target`` may use."""
        return target - self.config.memory_gap * self.config.frame_skip

    def render_memory(self, episode_number, target, pose=None):
        """Render episode ``episode_number``'s memory for ``target`` (from ``pose`` if given)."""
        data = self.episodes[episode_number]
        size = self.config.size
        pose = data.pose[target] if pose is None else pose
        if data.cloud is None:
            return empty_view(size, size)
        last = min(self.memory_last_frame(target), target - 1)
        return data.cloud.render(last, pose, data.K, size, size, self.config.render)

    def __getitem__(self, item):
        episode_number, target = (int(v) for v in self.index[item])
        data = self.episodes[episode_number]
        config = self.config
        frames = target - config.frame_skip * np.arange(config.context, -1, -1)
        poses = data.pose[frames]
        images = _to_model_range(data.rgb[frames])
        sample = {
            'context': images[:-1],
            'target': images[-1],
            'motions': torch.from_numpy(
                geometry.relative_motion(poses[:-1], poses[1:]).astype(np.float32)),
            'abs_pose': torch.from_numpy(
                geometry.absolute_pose_features(poses).astype(np.float32)),
            'revisit': torch.tensor(bool(data.revisit[target])),
            'episode': torch.tensor(episode_number),
            'seed': torch.tensor(data.seed),
            'frame': torch.tensor(target),
        }
        if config.spatial_render:
            view = self.render_memory(episode_number, target)
            render_rgb = _to_model_range(view.rgb)
            render_rgb[:, ~torch.from_numpy(view.mask)] = 0.0
            sample['render_rgb'] = render_rgb
            sample['render_mask'] = torch.from_numpy(view.mask[None].astype(np.float32))
        return sample


class ReplayMix(torch.utils.data.Dataset):
    """
    A dataset's windows plus a share of windows replayed from another (rehearsal).

    Fine-tuning on a new domain alone forgets the old one; mixing in windows of the data the
    base was trained on keeps it. An epoch holds every window of ``primary`` and enough
    replayed windows that they are ``fraction`` of it; each replayed slot draws a window of
    ``replay`` at random when read (torch's RNG, seeded per data-loader worker), so epochs see
    different replayed windows. Replayed samples carry episode numbers after the primary's.
    """

    def __init__(self, primary, replay, fraction) -> None:
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f'replay fraction must be in [0, 1), got {fraction}')
        if fraction > 0 and len(replay) == 0:
            raise ValueError('the replay data hold no training windows')
        self.primary, self.replay, self.fraction = primary, replay, fraction
        self.replayed = int(round(len(primary) * fraction / (1.0 - fraction)))
        self.config = primary.config

    def __len__(self):
        return len(self.primary) + self.replayed

    def __getitem__(self, item):
        if item < len(self.primary):
            return self.primary[item]
        if item >= len(self):
            raise IndexError(item)
        sample = dict(self.replay[int(torch.randint(len(self.replay), ()))])
        sample['episode'] = sample['episode'] + len(self.primary.episodes)
        return sample
