"""
Episodic memory: a bounded buffer of keyframes (small RGB, pose, stamp, motion).

A frame becomes a keyframe when the camera moved or turned enough since the newest keyframe,
or when enough time passed. When the buffer is full, the keyframe most redundant with its
nearest neighbour in (x, y, heading) is evicted, never the one being admitted, so the buffer
keeps covering the places it has seen instead of only the most recent ones. ``retrieve``
ranks keyframes by how much of a query camera's planar view they also saw. The episodic
expert finetunes on ``snapshot()``; ``version`` tells it when there is something new.

A keyframe may carry the *memory view* it was taken with: the spatial memory rendered at its
pose before its own depth was fused (rgb and a coverage mask). The adapters then learn what
this place looks like given the render the sampler will also give them (world_model.py).
"""

from dataclasses import dataclass
import math
import threading

from mowm_ros import geometry
import numpy as np

ARRAY_NAMES = ('rgb', 'pose', 'stamp', 'motion', 'keyframe_id', 'version', 'next_id')
VIEW_NAMES = ('view_rgb', 'view_mask', 'has_view')   # optional: older snapshots lack them


@dataclass
class EpisodicBufferConfig:
    capacity: int = 1000
    image_size: int = 64                # keyframes are uint8 (size, size, 3)
    min_translation: float = 0.3        # metres moved since the newest keyframe to admit
    min_rotation: float = 0.35          # radians turned since the newest keyframe to admit
    max_interval_s: float = 10.0        # admit after this long even without motion; None: never
    min_interval_s: float = 0.0         # never admit sooner than this after the newest
    yaw_weight: float = None            # metres per radian in pose distances; None: the ratio
    view_fov_deg: float = 90.0          # planar view fan used to score overlap
    view_range: float = 3.0             # metres

    def __post_init__(self):
        def require(condition, name, expectation):
            if not condition:
                raise ValueError(f'EpisodicBufferConfig.{name} must be {expectation}, '
                                 f'got {getattr(self, name)!r}')

        require(_whole(self.capacity, 2), 'capacity', 'an integer >= 2')
        require(_whole(self.image_size, 1), 'image_size', 'a positive integer')
        require(_finite(self.min_translation) and self.min_translation >= 0, 'min_translation',
                '>= 0')
        require(_finite(self.min_rotation) and self.min_rotation >= 0, 'min_rotation', '>= 0')
        require(self.max_interval_s is None or (_finite(self.max_interval_s)
                                                and self.max_interval_s > 0),
                'max_interval_s', 'None or positive')
        require(_finite(self.min_interval_s) and self.min_interval_s >= 0, 'min_interval_s',
                '>= 0')
        require(self.yaw_weight is None or (_finite(self.yaw_weight) and self.yaw_weight > 0),
                'yaw_weight', 'None or positive')
        require(_finite(self.view_fov_deg) and 0 < self.view_fov_deg < 360, 'view_fov_deg',
                'within (0, 360)')
        require(_finite(self.view_range) and self.view_range > 0, 'view_range', 'positive')

    @property
    def metres_per_radian(self) -> float:
        """Weight of heading against position when comparing poses."""
        if self.yaw_weight is not None:
            return self.yaw_weight
        if self.min_rotation > 0 and self.min_translation > 0:
            return self.min_translation / self.min_rotation
        return 1.0


@dataclass
class Keyframe:
    rgb: np.ndarray       # uint8 (S, S, 3)
    pose: np.ndarray      # float64 4x4 world <- optical camera
    stamp: int            # nanoseconds
    motion: np.ndarray    # (dx, dy, dyaw) from the previous keyframe in the buffer, zeros first
    keyframe_id: int      # admission number, unique for the buffer's life
    score: float = None   # view overlap, set by retrieve


@dataclass
class KeyframeArrays:
    """A consistent copy of the buffer in admission order, for finetuning."""

    rgb: np.ndarray          # uint8 (N, S, S, 3)
    pose: np.ndarray         # float64 (N, 4, 4)
    stamp: np.ndarray        # int64 (N,)
    motion: np.ndarray       # float64 (N, 3)
    keyframe_id: np.ndarray  # int64 (N,)
    version: int
    view_rgb: np.ndarray = None   # uint8 (N, S, S, 3): the memory view at each keyframe
    view_mask: np.ndarray = None  # bool (N, S, S): which view pixels the memory covered
    has_view: np.ndarray = None   # bool (N,): keyframes stored with a view

    def __len__(self):
        return len(self.stamp)

    def keyframe(self, index) -> Keyframe:
        return Keyframe(self.rgb[index], self.pose[index], int(self.stamp[index]),
                        self.motion[index], int(self.keyframe_id[index]))


class EpisodicBuffer:
    """Keyframes admitted on motion or time, evicted by redundancy, retrieved by overlap."""

    def __init__(self, config=None) -> None:
        self.config = config if config is not None else EpisodicBufferConfig()
        self._lock = threading.Lock()
        self._version = 0
        self._next_id = 0
        self._clear()

    def _clear(self):
        size, capacity = self.config.image_size, self.config.capacity
        # Fixed slots: a new keyframe reuses the slot of the one it evicts (flat memory).
        self._rgb = np.zeros((capacity, size, size, 3), np.uint8)
        self._pose = np.zeros((capacity, 4, 4))
        self._stamp = np.zeros(capacity, np.int64)
        self._motion = np.zeros((capacity, 3))
        self._keyframe_id = np.zeros(capacity, np.int64)
        self._view_rgb = np.zeros((capacity, size, size, 3), np.uint8)
        self._view_mask = np.zeros((capacity, size, size), bool)
        self._has_view = np.zeros(capacity, bool)
        self._order = []   # slots, oldest first

    def __len__(self):
        with self._lock:
            return len(self._order)

    @property
    def version(self) -> int:
        """Increases on every admission (and reset); never decreases."""
        with self._lock:
            return self._version

    def reset(self) -> None:
        with self._lock:
            self._clear()
            self._version += 1

    def add(self, rgb, pose, stamp, view=None) -> bool:
        """
        Offer a frame; return True when it was admitted as a keyframe.

        ``rgb`` must be uint8 (S, S, 3) with S the configured image size, ``pose`` world <-
        optical camera, ``stamp`` integer nanoseconds not older than the newest keyframe;
        ``view`` (optional) the memory view (rgb uint8 (S, S, 3), mask bool (S, S)) taken
        with it. Bad input raises ValueError and leaves the buffer unchanged.
        """
        rgb = np.asarray(rgb)
        size = self.config.image_size
        if rgb.shape != (size, size, 3) or rgb.dtype != np.uint8:
            raise ValueError(f'keyframe rgb must be uint8 ({size}, {size}, 3), '
                             f'got {rgb.dtype} {rgb.shape}')
        if view is not None:
            view_rgb, view_mask = np.asarray(view[0]), np.asarray(view[1])
            if view_rgb.shape != (size, size, 3) or view_rgb.dtype != np.uint8 \
                    or view_mask.shape != (size, size):
                raise ValueError(f'keyframe view must be uint8 ({size}, {size}, 3) and a '
                                 f'({size}, {size}) mask, got {view_rgb.dtype} '
                                 f'{view_rgb.shape} and {view_mask.shape}')
        pose = geometry.check_pose(pose)
        if isinstance(stamp, (bool, np.bool_)) or not isinstance(stamp, (int, np.integer)) \
                or stamp < 0:
            raise ValueError(f'stamp must be a non-negative integer of nanoseconds, '
                             f'got {stamp!r}')
        stamp = int(stamp)
        with self._lock:
            motion = self._admission(pose, stamp)
            if motion is None:
                return False
            if len(self._order) == self.config.capacity:
                slot = self._evict_for(pose)
            else:
                slot = len(self._order)
            self._rgb[slot] = rgb
            self._pose[slot] = pose
            self._stamp[slot] = stamp
            self._motion[slot] = motion
            self._keyframe_id[slot] = self._next_id
            self._has_view[slot] = view is not None
            if view is not None:
                self._view_rgb[slot], self._view_mask[slot] = view_rgb, view_mask
            self._order.append(slot)
            self._next_id += 1
            self._version += 1
            return True

    def would_admit(self, pose, stamp) -> bool:
        """Return whether ``add`` would admit a frame at ``pose`` and ``stamp`` now."""
        with self._lock:
            return self._admission(geometry.check_pose(pose), int(stamp)) is not None

    def _admission(self, pose, stamp):
        """Return the motion from the newest keyframe if a frame there is admitted, else None."""
        if not self._order:
            return np.zeros(3)
        newest = self._order[-1]
        if stamp < self._stamp[newest]:
            raise ValueError(f'stamp {stamp} is older than the newest keyframe '
                             f'{self._stamp[newest]}')
        motion = geometry.relative_motion(self._pose[newest], pose)
        if not self._should_admit(motion, (stamp - self._stamp[newest]) / 1e9):
            return None
        return motion

    def _should_admit(self, motion, elapsed_s):
        config = self.config
        if elapsed_s < config.min_interval_s:
            return False
        moved = math.hypot(motion[0], motion[1]) >= config.min_translation
        turned = abs(motion[2]) >= config.min_rotation
        waited = config.max_interval_s is not None and elapsed_s >= config.max_interval_s
        return moved or turned or waited

    def pose_features(self, poses) -> np.ndarray:
        """(x, y, w cos yaw, w sin yaw): Euclidean distances compare places and headings."""
        x, y, yaw = np.moveaxis(geometry.planar_pose(np.asarray(poses)), -1, 0)
        weight = self.config.metres_per_radian
        return np.stack([x, y, weight * np.cos(yaw), weight * np.sin(yaw)], axis=-1)

    def _evict_for(self, incoming_pose):
        """Evict the stored keyframe nearest to another one (the older of the pair); free slot."""
        slots = np.array(self._order)
        features = self.pose_features(np.concatenate([self._pose[slots], incoming_pose[None]]))
        squared = (features * features).sum(axis=1)
        distance = squared[:, None] + squared[None, :] - 2.0 * features @ features.T
        distance = np.minimum(distance, distance.T)
        np.fill_diagonal(distance, np.inf)
        nearest = distance[:-1].min(axis=1)   # the incoming keyframe is never a candidate
        # argmin picks the first minimum, i.e. the older keyframe of the closest pair.
        position = int(np.argmin(nearest))
        slot = int(slots[position])
        del self._order[position]
        if 0 < position < len(self._order):
            follower, previous = self._order[position], self._order[position - 1]
            self._motion[follower] = geometry.relative_motion(self._pose[previous],
                                                              self._pose[follower])
        elif position == 0 and self._order:
            self._motion[self._order[0]] = 0.0
        return slot

    def _recompute_motion(self):
        previous = None
        for slot in self._order:
            self._motion[slot] = 0.0 if previous is None else geometry.relative_motion(
                self._pose[previous], self._pose[slot])
            previous = slot

    def snapshot(self) -> KeyframeArrays:
        """Return a consistent copy of every keyframe in admission order, with the version."""
        with self._lock:
            return self._snapshot_locked()

    def _snapshot_locked(self):
        slots = np.array(self._order, dtype=np.int64)
        views = ((self._view_rgb[slots], self._view_mask[slots], self._has_view[slots])
                 if self._has_view[slots].any() else (None, None, None))
        return KeyframeArrays(self._rgb[slots], self._pose[slots], self._stamp[slots],
                              self._motion[slots], self._keyframe_id[slots], self._version,
                              *views)

    def __iter__(self):
        arrays = self.snapshot()
        return (arrays.keyframe(index) for index in range(len(arrays)))

    def overlap(self, pose, keyframe_poses, samples=8) -> np.ndarray:
        """
        Share of the query camera's planar view fan that each keyframe's fan also covers.

        The fan is ``view_fov_deg`` wide and ``view_range`` deep; it is sampled on a polar grid
        of ``samples`` x ``samples`` points of equal area. Walls are ignored: this is a cheap
        geometric proxy of which keyframes show what the query camera would see.
        """
        half_fov = math.radians(self.config.view_fov_deg) / 2.0
        reach = self.config.view_range
        x, y, yaw = geometry.planar_pose(np.asarray(pose))
        radius = reach * np.sqrt((np.arange(samples) + 0.5) / samples)
        angle = yaw + np.linspace(-half_fov, half_fov, samples)
        sample_x = (x + radius[:, None] * np.cos(angle)[None]).ravel()
        sample_y = (y + radius[:, None] * np.sin(angle)[None]).ravel()
        kx, ky, kyaw = np.moveaxis(geometry.planar_pose(np.asarray(keyframe_poses)), -1, 0)
        dx = sample_x[None] - kx[:, None]
        dy = sample_y[None] - ky[:, None]
        bearing = geometry.wrap_angle(np.arctan2(dy, dx) - kyaw[:, None])
        seen = (dx * dx + dy * dy <= reach * reach) & (np.abs(bearing) <= half_fov)
        return seen.mean(axis=1)

    def retrieve(self, pose, k, min_overlap=0.0) -> list:
        """
        Up to ``k`` keyframes whose view best overlaps the one from ``pose``, best first.

        Only keyframes with overlap above ``min_overlap`` are returned; equal overlaps go to
        the more recent keyframe. Each returned Keyframe carries its ``score``.
        """
        pose = geometry.check_pose(pose)
        if not _whole(k, 0):
            raise ValueError(f'k must be a non-negative integer, got {k!r}')
        arrays = self.snapshot()
        if len(arrays) == 0 or k == 0:
            return []
        score = self.overlap(pose, arrays.pose)
        order = np.lexsort((-arrays.stamp, -score))
        chosen = [index for index in order[:k] if score[index] > min_overlap]
        result = []
        for index in chosen:
            keyframe = arrays.keyframe(index)
            keyframe.score = float(score[index])
            result.append(keyframe)
        return result

    # Persistence -----------------------------------------------------------------------------

    def to_arrays(self) -> dict:
        """Everything needed to restore the buffer, as plain numpy arrays (no pickle)."""
        with self._lock:
            arrays = self._snapshot_locked()
            next_id = self._next_id
        result = {'rgb': arrays.rgb, 'pose': arrays.pose, 'stamp': arrays.stamp,
                  'motion': arrays.motion, 'keyframe_id': arrays.keyframe_id,
                  'version': np.int64(arrays.version), 'next_id': np.int64(next_id)}
        if arrays.has_view is not None:
            result.update(view_rgb=arrays.view_rgb, view_mask=arrays.view_mask,
                          has_view=arrays.has_view)
        return result

    @staticmethod
    def check_arrays(arrays) -> None:
        """Raise ValueError naming the first problem of arrays made by ``to_arrays``."""
        missing = [name for name in ARRAY_NAMES if name not in arrays]
        if missing:
            raise ValueError(f'episodic buffer arrays miss {missing}')
        rgb = np.asarray(arrays['rgb'])
        if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[3] != 3 \
                or rgb.shape[1] != rgb.shape[2]:
            raise ValueError(f'episodic rgb must be uint8 (N, S, S, 3), got {rgb.dtype} '
                             f'{rgb.shape}')
        count = len(rgb)
        expected = {'pose': (np.float64, (count, 4, 4)), 'stamp': (np.int64, (count,)),
                    'motion': (np.float64, (count, 3)), 'keyframe_id': (np.int64, (count,)),
                    'version': (np.int64, ()), 'next_id': (np.int64, ())}
        for name, (dtype, shape) in expected.items():
            value = np.asarray(arrays[name])
            if value.dtype != dtype or value.shape != shape:
                raise ValueError(f'episodic array {name!r} must be {np.dtype(dtype)} {shape}, '
                                 f'got {value.dtype} {value.shape}')
        present = [name for name in VIEW_NAMES if name in arrays]
        if present and len(present) != len(VIEW_NAMES):
            raise ValueError(f'episodic views need all of {list(VIEW_NAMES)}, got {present}')
        if present:
            views = {'view_rgb': (np.uint8, rgb.shape), 'view_mask': (np.bool_, rgb.shape[:3]),
                     'has_view': (np.bool_, (count,))}
            for name, (dtype, shape) in views.items():
                value = np.asarray(arrays[name])
                if value.dtype != dtype or value.shape != shape:
                    raise ValueError(f'episodic array {name!r} must be {np.dtype(dtype)} '
                                     f'{shape}, got {value.dtype} {value.shape}')
        for index, pose in enumerate(arrays['pose']):
            geometry.check_pose(pose, f'episodic pose {index}')
        if count > 1 and np.any(np.diff(arrays['stamp']) < 0):
            raise ValueError('episodic stamps must not decrease')
        if count and (np.any(np.diff(arrays['keyframe_id']) <= 0)
                      or arrays['keyframe_id'][-1] >= arrays['next_id']):
            raise ValueError('episodic keyframe ids must increase and stay below next_id')

    @classmethod
    def from_arrays(cls, arrays, config=None) -> 'EpisodicBuffer':
        """
        Rebuild a buffer from ``to_arrays`` output.

        Without ``config`` the stored image size and the default capacity (or more, to hold
        every stored keyframe) are used. A config with another image size is refused; a smaller
        capacity evicts by the usual policy.
        """
        cls.check_arrays(arrays)
        count, size = len(arrays['rgb']), arrays['rgb'].shape[1]
        if config is None:
            config = EpisodicBufferConfig(image_size=size,
                                          capacity=max(EpisodicBufferConfig.capacity, count))
        elif config.image_size != size:
            raise ValueError(f'stored keyframes are {size}x{size}, the config expects '
                             f'{config.image_size}x{config.image_size}')
        buffer = cls(config)
        with buffer._lock:
            for index in range(count):
                if len(buffer._order) == config.capacity:
                    slot = buffer._evict_for(arrays['pose'][index])
                else:
                    slot = len(buffer._order)
                buffer._rgb[slot] = arrays['rgb'][index]
                buffer._pose[slot] = arrays['pose'][index]
                buffer._stamp[slot] = arrays['stamp'][index]
                buffer._motion[slot] = arrays['motion'][index]
                buffer._keyframe_id[slot] = arrays['keyframe_id'][index]
                buffer._has_view[slot] = 'has_view' in arrays and arrays['has_view'][index]
                if buffer._has_view[slot]:
                    buffer._view_rgb[slot] = arrays['view_rgb'][index]
                    buffer._view_mask[slot] = arrays['view_mask'][index]
                buffer._order.append(slot)
            buffer._recompute_motion()
            buffer._version = int(arrays['version'])
            buffer._next_id = int(arrays['next_id'])
        return buffer


def _finite(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)


def _whole(value, minimum):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) \
        and value >= minimum
