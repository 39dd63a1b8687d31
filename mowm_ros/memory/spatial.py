"""
Spatial memory: a bounded, coloured voxel point cloud in the world (odometry) frame.

Each occupied voxel holds one point: the running mean of the depth samples that fell in it,
their mean colour, how many samples it has seen (capped, so it keeps adapting) and when it was
last seen. Points live in two tables sorted by voxel key (see ``voxels``): a large ``main``
table and a small ``recent`` table that new voxels enter cheaply; when ``recent`` grows past
``merge_threshold`` it is merged into ``main`` in one linear pass. Sorted keys give both the
voxel look-up (binary search) and the view culling of ``render`` (whole chunks at a time).

open3d has no incremental voxel map with per-point colour and age that can be culled by view
(its VoxelBlockGrid is a TSDF whose ray casting hangs on CPU), so the map is these arrays;
``to_open3d`` hands the cloud to open3d for visualisation and file export.
"""

from dataclasses import dataclass, fields
import math
import threading

from mowm_ros import geometry
from mowm_ros.memory import voxels
from mowm_ros.render import render_points, RenderedView
import numpy as np

OCCUPIED = 100
FREE = 0
UNKNOWN = -1
ARRAY_NAMES = ('keys', 'xyz', 'rgb', 'last_seen', 'weight', 'voxel_size', 'robot_position',
               'clock')


@dataclass
class SpatialMemoryConfig:
    voxel_size: float = 0.05            # metres
    max_points: int = 1_000_000
    min_depth: float = 0.1              # metres; nearer depth samples are ignored
    max_depth: float = 5.0              # metres; farther depth samples are ignored
    pixel_stride: int = 0               # 0: the largest stride whose step at max_depth <= voxel
    max_observations: int = 16          # the running mean forgets beyond this many samples
    eviction_batch_fraction: float = 0.05   # evict this share of max_points beyond the cap
    eviction_age_scale_s: float = 60.0      # score = age / age scale + distance / distance scale
    eviction_distance_scale_m: float = 10.0
    merge_threshold: int = 32_768       # recent voxels merged into the main table beyond this
    render_point_size: float = None     # splat side in metres; None: 1.5 voxels
    render_max_radius: int = 2          # splat half-side limit in pixels
    render_near: float = 0.05
    render_far: float = 20.0

    def __post_init__(self):
        def require(condition, name, expectation):
            if not condition:
                raise ValueError(f'SpatialMemoryConfig.{name} must be {expectation}, '
                                 f'got {getattr(self, name)!r}')

        require(_positive(self.voxel_size), 'voxel_size', 'a positive number of metres')
        require(_whole(self.max_points, 1), 'max_points', 'an integer >= 1')
        require(_finite(self.min_depth) and self.min_depth >= 0, 'min_depth', '>= 0')
        require(_positive(self.max_depth) and self.max_depth > self.min_depth, 'max_depth',
                'finite and greater than min_depth')
        require(_whole(self.pixel_stride, 0), 'pixel_stride', 'an integer >= 0 (0: automatic)')
        require(_whole(self.max_observations, 1), 'max_observations', 'an integer >= 1')
        require(_finite(self.eviction_batch_fraction) and 0 <= self.eviction_batch_fraction <= 1,
                'eviction_batch_fraction', 'within [0, 1]')
        require(_positive(self.eviction_age_scale_s), 'eviction_age_scale_s', 'positive')
        require(_positive(self.eviction_distance_scale_m), 'eviction_distance_scale_m',
                'positive')
        require(_whole(self.merge_threshold, 1), 'merge_threshold', 'an integer >= 1')
        require(self.render_point_size is None
                or (_finite(self.render_point_size) and self.render_point_size >= 0),
                'render_point_size', 'None or >= 0')
        require(_whole(self.render_max_radius, 0), 'render_max_radius', 'an integer >= 0')
        require(_positive(self.render_near), 'render_near', 'positive')
        require(isinstance(self.render_far, (int, float)) and self.render_far > self.render_near,
                'render_far', 'greater than render_near')

    @property
    def point_size(self) -> float:
        """Splat side used by ``render`` when none is given."""
        if self.render_point_size is None:
            return 1.5 * self.voxel_size
        return self.render_point_size


@dataclass
class IntegrationResult:
    observed: int   # voxels the frame touched
    added: int      # of which new
    evicted: int    # points evicted to keep within max_points


@dataclass
class OccupancyGrid:
    """
    A 2D occupancy grid laid out like nav_msgs/OccupancyGrid.

    ``data`` is int8 (height * width,), row-major from the cell at the origin (rows along +y):
    100 occupied, 0 free, -1 unknown.
    """

    data: np.ndarray
    resolution: float
    origin_x: float
    origin_y: float
    width: int
    height: int

    @property
    def cells(self) -> np.ndarray:
        """Return the grid as a (height, width) view: ``cells[row, col]``, rows along +y."""
        return self.data.reshape(self.height, self.width)

    def cell_of(self, x, y) -> tuple:
        """(row, col) of the cell holding world point (x, y); it may lie outside the grid."""
        return (int(math.floor((y - self.origin_y) / self.resolution)),
                int(math.floor((x - self.origin_x) / self.resolution)))

    def value_at(self, x, y) -> int:
        """Return the value of the cell at world point (x, y): UNKNOWN outside the grid."""
        row, col = self.cell_of(x, y)
        if 0 <= row < self.height and 0 <= col < self.width:
            return int(self.data[row * self.width + col])
        return UNKNOWN


@dataclass
class _Table:
    """Points sorted by voxel key; every array has one row per voxel."""

    keys: np.ndarray        # int64 (N,)
    xyz: np.ndarray         # float32 (N, 3)
    rgb: np.ndarray         # uint8 (N, 3)
    last_seen: np.ndarray   # int64 (N,) nanoseconds
    weight: np.ndarray      # float32 (N,) samples averaged, capped

    @classmethod
    def empty(cls):
        return cls(np.zeros(0, np.int64), np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8),
                   np.zeros(0, np.int64), np.zeros(0, np.float32))

    def __len__(self):
        return len(self.keys)

    def select(self, index):
        return _Table(*(getattr(self, f.name)[index] for f in fields(self)))

    def find(self, keys):
        """Row of each key and whether it is present."""
        row = np.searchsorted(self.keys, keys)
        present = np.zeros(len(keys), bool)
        inside = row < len(self.keys)
        present[inside] = self.keys[row[inside]] == keys[inside]
        return row, present

    def merged_with(self, other):
        """Return a new table holding the rows of both (their keys must be disjoint)."""
        if len(other) == 0:
            return self
        at = np.searchsorted(self.keys, other.keys)
        return _Table(*(np.insert(getattr(self, f.name), at, getattr(other, f.name), axis=0)
                        for f in fields(self)))


@dataclass
class _Frame:
    """A validated frame reduced to one sample per voxel, ready to merge."""

    keys: np.ndarray      # int64 (M,) sorted, unique
    xyz: np.ndarray       # float64 (M, 3) mean of the samples
    rgb: np.ndarray       # float64 (M, 3) mean colour
    count: np.ndarray     # float32 (M,) samples per voxel
    stamp: int
    position: np.ndarray  # camera centre (3,)
    dropped: int          # samples outside the representable key range


@dataclass
class _Cloud:
    """The arrays rendering needs: the main table's points by chunk and the recent points."""

    main_xyz: np.ndarray
    main_rgb: np.ndarray
    main_seen: np.ndarray       # last_seen stamps (ns)
    chunk_ids: np.ndarray       # replaced, never changed in place, when the main table changes
    chunk_offsets: np.ndarray
    recent_xyz: np.ndarray
    recent_rgb: np.ndarray
    recent_seen: np.ndarray

    def copy(self):
        # Integration updates positions, colours and stamps in place; the chunk index is
        # replaced.
        return _Cloud(self.main_xyz.copy(), self.main_rgb.copy(), self.main_seen.copy(),
                      self.chunk_ids, self.chunk_offsets, self.recent_xyz.copy(),
                      self.recent_rgb.copy(), self.recent_seen.copy())

    def runs_in(self, view, voxel_size):
        in_view = voxels.chunks_in_view(self.chunk_ids, voxel_size, view['pose'], view['K'],
                                        view['width'], view['height'], view['near'],
                                        view['far'], view['margin'])
        return voxels.selected_runs(self.chunk_offsets, in_view)

    def points_in(self, view, voxel_size, seen_after=None):
        """
        Copy the points of the chunks in view and every recent point.

        ``seen_after`` (ns): only the points last seen at or after that stamp.
        """
        runs = self.runs_in(view, voxel_size)
        xyz = np.concatenate([self.main_xyz[a:b] for a, b in runs] + [self.recent_xyz])
        rgb = np.concatenate([self.main_rgb[a:b] for a, b in runs] + [self.recent_rgb])
        if seen_after is not None:
            seen = np.concatenate([self.main_seen[a:b] for a, b in runs] + [self.recent_seen])
            kept = seen >= seen_after
            xyz, rgb = xyz[kept], rgb[kept]
        return xyz, rgb


def _view_options(config, pose, K, width, height, point_size=None, max_radius=None, near=None,
                  far=None):
    if not (_whole(width, 1) and _whole(height, 1)):
        raise ValueError(f'width and height must be positive integers, got {width}, {height}')
    view = {'pose': geometry.check_pose(pose), 'K': geometry.check_intrinsics(K),
            'width': width, 'height': height,
            'point_size': config.point_size if point_size is None else point_size,
            'max_radius': config.render_max_radius if max_radius is None else max_radius,
            'near': config.render_near if near is None else near,
            'far': config.render_far if far is None else far}
    view['margin'] = view['max_radius'] if view['point_size'] > 0 else 0
    return view


def _render(xyz, rgb, view):
    return render_points(xyz, rgb, view['pose'], view['K'], view['width'], view['height'],
                         point_size=view['point_size'], max_radius=view['max_radius'],
                         near=view['near'], far=view['far'])


class SpatialView:
    """
    The points of a SpatialMemory as they were when ``SpatialMemory.view()`` was called.

    ``render`` takes the same arguments as ``SpatialMemory.render`` and gives the same views
    of that moment, whatever the memory integrates since.
    """

    def __init__(self, config, cloud) -> None:
        self.config = config
        self._cloud = cloud

    def __len__(self):
        return len(self._cloud.main_xyz) + len(self._cloud.recent_xyz)

    def render(self, pose, K, width, height, point_size=None, max_radius=None, near=None,
               far=None, seen_after=None) -> RenderedView:
        view = _view_options(self.config, pose, K, width, height, point_size, max_radius, near,
                             far)
        return _render(*self._cloud.points_in(view, self.config.voxel_size, seen_after), view)


class SpatialMemory:
    """
    Coloured voxel point cloud: integrate RGB-D frames, render views, export cloud and grid.

    ``integrate`` and ``render`` may run on different threads: state changes hold a lock and
    ``render`` copies the points it needs under that lock, so it always sees whole frames.
    ``view()`` freezes the whole memory for several renders of one moment.
    """

    def __init__(self, config=None) -> None:
        self.config = config if config is not None else SpatialMemoryConfig()
        self._lock = threading.Lock()
        with self._lock:
            self._clear()

    def _clear(self):
        self._main = _Table.empty()
        self._recent = _Table.empty()
        self._chunk_ids, self._chunk_offsets = voxels.chunk_runs(self._main.keys)
        self._clock = 0
        self._robot_position = np.zeros(3)
        self._frames = 0
        self._evicted = 0
        self._dropped = 0

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def __len__(self):
        with self._lock:
            return len(self._main) + len(self._recent)

    @property
    def robot_position(self) -> np.ndarray:
        """Camera centre of the latest integrated frame: eviction keeps points near it."""
        with self._lock:
            return self._robot_position.copy()

    def stats(self) -> dict:
        with self._lock:
            return {'points': len(self._main) + len(self._recent), 'max_points':
                    self.config.max_points, 'recent_points': len(self._recent),
                    'chunks': len(self._chunk_ids), 'frames': self._frames,
                    'evicted': self._evicted, 'dropped_out_of_range': self._dropped}

    # Integration -----------------------------------------------------------------------------

    def pixel_stride(self, K) -> int:
        """Pixel step used to sample a frame with intrinsics ``K``."""
        if self.config.pixel_stride:
            return self.config.pixel_stride
        focal = min(K[0, 0], K[1, 1])
        return max(1, int(focal * self.config.voxel_size / self.config.max_depth))

    def integrate(self, rgb, depth, pose, K, stamp) -> IntegrationResult:
        """
        Fuse one RGB-D frame taken at ``pose`` (world <- optical camera) into the memory.

        ``rgb`` is uint8 (H, W, 3), ``depth`` float metres (H, W) with NaN or 0 invalid,
        ``K`` the 3x3 intrinsics and ``stamp`` integer nanoseconds. Bad input raises
        ValueError (geometry.GeometryError for a pose or K) and leaves the memory unchanged.
        """
        frame = self._prepare(rgb, depth, pose, K, stamp)
        with self._lock:
            added = self._merge_frame(frame)
            self._clock = max(self._clock, frame.stamp)
            self._robot_position = frame.position
            self._frames += 1
            self._dropped += frame.dropped
            if len(self._recent) > self.config.merge_threshold:
                self._merge_recent()
            evicted = self._evict_over_cap()
        return IntegrationResult(observed=len(frame.keys), added=added, evicted=evicted)

    def _prepare(self, rgb, depth, pose, K, stamp):
        rgb = np.asarray(rgb)
        depth = np.asarray(depth)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f'rgb must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}')
        if depth.shape != rgb.shape[:2]:
            raise ValueError(f'depth shape {depth.shape} does not match rgb {rgb.shape[:2]}')
        if depth.dtype.kind != 'f':
            raise ValueError(f'depth must be float metres (NaN or 0 invalid), got {depth.dtype}')
        pose = geometry.check_pose(pose)
        K = geometry.check_intrinsics(K)
        stamp = _check_stamp(stamp)

        stride = self.pixel_stride(K)
        sampled_depth = depth[::stride, ::stride]
        sampled_rgb = rgb[::stride, ::stride]
        sampled_K = K.copy()
        sampled_K[:2] /= stride
        sampled_depth = np.where(sampled_depth >= self.config.min_depth, sampled_depth, np.nan)
        points, valid = geometry.unproject_depth(sampled_depth, sampled_K, pose,
                                                 self.config.max_depth)
        colours = sampled_rgb[valid]
        coordinates = voxels.voxel_coordinates(points, self.config.voxel_size)
        keep = voxels.representable(coordinates)
        dropped = int(len(keep) - keep.sum())
        if dropped:
            points, colours, coordinates = points[keep], colours[keep], coordinates[keep]

        keys, inverse, count = np.unique(voxels.pack_keys(coordinates), return_inverse=True,
                                         return_counts=True)
        xyz = np.stack([np.bincount(inverse, points[:, axis], len(keys))
                        for axis in range(3)], axis=1) / count[:, None]
        mean_rgb = np.stack([np.bincount(inverse, colours[:, channel], len(keys))
                             for channel in range(3)], axis=1) / count[:, None]
        return _Frame(keys, xyz, mean_rgb, count.astype(np.float32), stamp, pose[:3, 3].copy(),
                      dropped)

    def _merge_frame(self, frame):
        """Update the voxels the frame saw; return how many were new."""
        pending = np.ones(len(frame.keys), bool)
        for table in (self._main, self._recent):
            row, present = table.find(frame.keys)
            present &= pending
            if present.any():
                self._update(table, row[present], frame, np.flatnonzero(present))
                pending &= ~present
        new = np.flatnonzero(pending)
        if len(new):
            rgb = np.clip(np.rint(frame.rgb[new]), 0, 255).astype(np.uint8)
            weight = np.minimum(frame.count[new], self.config.max_observations)
            fresh = _Table(frame.keys[new], frame.xyz[new].astype(np.float32), rgb,
                           np.full(len(new), frame.stamp, np.int64), weight.astype(np.float32))
            self._recent = self._recent.merged_with(fresh)
        return len(new)

    def _update(self, table, row, frame, sample):
        """Update the running mean of position and colour, forgetting beyond max_observations."""
        old_weight = table.weight[row]
        count = frame.count[sample]
        share = (count / (old_weight + count))[:, None]
        table.xyz[row] += (share * (frame.xyz[sample] - table.xyz[row])).astype(np.float32)
        rgb = table.rgb[row].astype(np.float32)
        rgb += share * (frame.rgb[sample] - rgb)
        table.rgb[row] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
        table.weight[row] = np.minimum(old_weight + count, self.config.max_observations)
        table.last_seen[row] = frame.stamp

    def _merge_recent(self):
        self._set_main(self._main.merged_with(self._recent))
        self._recent = _Table.empty()

    def _set_main(self, table):
        self._main = table
        self._chunk_ids, self._chunk_offsets = voxels.chunk_runs(table.keys)

    # Eviction --------------------------------------------------------------------------------

    def eviction_scores(self, xyz, last_seen) -> np.ndarray:
        """Higher for points seen long ago and far from the robot: these are evicted first."""
        age_s = (self._clock - last_seen) / 1e9
        distance = np.linalg.norm(xyz - self._robot_position.astype(np.float32), axis=1)
        return (age_s / self.config.eviction_age_scale_s
                + distance / self.config.eviction_distance_scale_m)

    def _evict_over_cap(self):
        total = len(self._main) + len(self._recent)
        excess = total - self.config.max_points
        if excess <= 0:
            return 0
        self._merge_recent()
        batch = int(self.config.eviction_batch_fraction * self.config.max_points)
        count = min(total, excess + batch)
        scores = self.eviction_scores(self._main.xyz, self._main.last_seen)
        evicted = np.argpartition(scores, total - count)[total - count:]
        keep = np.ones(total, bool)
        keep[evicted] = False
        self._set_main(self._main.select(keep))
        self._evicted += count
        return count

    # Views and exports -----------------------------------------------------------------------

    def render(self, pose, K, width, height, point_size=None, max_radius=None, near=None,
               far=None, seen_after=None) -> RenderedView:
        """
        Render the memory as seen from ``pose`` with intrinsics ``K``: a render.RenderedView.

        Only chunks that meet the view frustum are copied (under the lock) and splatted with
        an exact z-buffer; splat size and clipping planes default to the config's.
        ``seen_after`` (ns) renders only the points last seen at or after that stamp (with
        drifting odometry, older points lie elsewhere in the odometry frame).
        """
        view = _view_options(self.config, pose, K, width, height, point_size, max_radius, near,
                             far)
        with self._lock:
            xyz, rgb = self._cloud().points_in(view, self.config.voxel_size, seen_after)
        return _render(xyz, rgb, view)

    def view(self) -> SpatialView:
        """
        Return a SpatialView: a frozen copy of the points that renders what the memory holds now.

        A rollout renders the memory at several poses; integration meanwhile changes it (in
        place), so the rollout takes one view at its start and renders only from that. The
        copy is the only work done under the lock (a few ms per million points).
        """
        with self._lock:
            return SpatialView(self.config, self._cloud().copy())

    def count_in_view(self, pose, K, width, height, **view_options) -> int:
        """How many points ``render`` would project for this view after culling chunks."""
        view = _view_options(self.config, pose, K, width, height, **view_options)
        with self._lock:
            runs = self._cloud().runs_in(view, self.config.voxel_size)
            return sum(stop - start for start, stop in runs) + len(self._recent)

    def _cloud(self):
        """Return the live points as a _Cloud (no copy): call with the lock held."""
        return _Cloud(self._main.xyz, self._main.rgb, self._main.last_seen, self._chunk_ids,
                      self._chunk_offsets, self._recent.xyz, self._recent.rgb,
                      self._recent.last_seen)

    def points_and_colors(self, seen_after=None) -> tuple:
        """
        Return copies of all points: xyz float32 (N, 3), rgb uint8 (N, 3) for a PointCloud2.

        ``seen_after`` (ns): only the points last seen at or after that stamp.
        """
        with self._lock:
            xyz = np.concatenate([self._main.xyz, self._recent.xyz])
            rgb = np.concatenate([self._main.rgb, self._recent.rgb])
            if seen_after is None:
                return xyz, rgb
            kept = np.concatenate([self._main.last_seen, self._recent.last_seen]) >= seen_after
        return xyz[kept], rgb[kept]

    def to_open3d(self) -> 'open3d.t.geometry.PointCloud':  # noqa: F821 - open3d is lazy
        """Return the cloud as an open3d tensor PointCloud (positions, colors in [0, 1])."""
        xyz, rgb = self.points_and_colors()
        import open3d as o3d  # lazy: slow to import, only for export; the memory is numpy
        cloud = o3d.t.geometry.PointCloud(o3d.core.Tensor(xyz))
        cloud.point.colors = o3d.core.Tensor(rgb.astype(np.float32) / 255.0)
        return cloud

    def occupancy_grid(self, resolution=0.05, z_min=0.1, z_max=1.5, floor_band=0.3,
                       min_points=1, bounds=None, max_cells=16_000_000,
                       seen_after=None) -> OccupancyGrid:
        """
        Project the memory onto a 2D grid for Nav2 (see OccupancyGrid).

        A cell is occupied when at least ``min_points`` points lie in it with z in
        [z_min, z_max] (the robot's height band); free when it has no such point but holds
        floor points, z in [z_min - floor_band, z_min); unknown otherwise. ``bounds``
        (x_min, y_min, x_max, y_max) fixes the extent; by default it is that of those points.
        ``seen_after`` (ns): only the points last seen at or after that stamp (see ``render``).
        """
        if not (_positive(resolution) and _finite(z_min) and _finite(z_max) and z_max > z_min
                and _finite(floor_band) and floor_band >= 0 and _whole(min_points, 1)):
            raise ValueError('occupancy_grid needs resolution > 0, z_max > z_min, '
                             f'floor_band >= 0 and min_points >= 1, got {resolution}, {z_min}, '
                             f'{z_max}, {floor_band}, {min_points}')
        xyz, _ = self.points_and_colors(seen_after)
        z = xyz[:, 2]
        in_band = (z >= z_min) & (z <= z_max)
        on_floor = (z >= z_min - floor_band) & (z < z_min)
        if bounds is None:
            used = xyz[in_band | on_floor, :2]
            if len(used) == 0:
                return OccupancyGrid(np.zeros(0, np.int8), resolution, 0.0, 0.0, 0, 0)
            (x_min, y_min), (x_max, y_max) = used.min(axis=0), used.max(axis=0)
        else:
            x_min, y_min, x_max, y_max = (float(b) for b in bounds)
            if not (x_max > x_min and y_max > y_min):
                raise ValueError(f'bounds must be (x_min, y_min, x_max, y_max), got {bounds}')
        origin_x = math.floor(x_min / resolution) * resolution
        origin_y = math.floor(y_min / resolution) * resolution
        width = int(math.floor((x_max - origin_x) / resolution)) + 1
        height = int(math.floor((y_max - origin_y) / resolution)) + 1
        if width * height > max_cells:
            raise ValueError(f'occupancy grid of {width} x {height} cells exceeds max_cells '
                             f'{max_cells}: use a coarser resolution or bounds')
        col = np.floor((xyz[:, 0] - origin_x) / resolution).astype(np.int64)
        row = np.floor((xyz[:, 1] - origin_y) / resolution).astype(np.int64)
        inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
        cell = row * width + col
        band_count = np.bincount(cell[inside & in_band], minlength=width * height)
        floor_count = np.bincount(cell[inside & on_floor], minlength=width * height)
        data = np.full(width * height, UNKNOWN, np.int8)
        data[floor_count > 0] = FREE
        data[band_count >= min_points] = OCCUPIED
        return OccupancyGrid(data, float(resolution), float(origin_x), float(origin_y),
                             width, height)

    # Persistence -----------------------------------------------------------------------------

    def to_arrays(self) -> dict:
        """Everything needed to restore the memory, as plain numpy arrays (no pickle)."""
        with self._lock:
            table = self._main.merged_with(self._recent)
            arrays = {f.name: getattr(table, f.name).copy() for f in fields(_Table)}
            arrays.update(voxel_size=np.float64(self.config.voxel_size),
                          robot_position=self._robot_position.astype(np.float64),
                          clock=np.int64(self._clock))
        return arrays

    @staticmethod
    def check_arrays(arrays) -> None:
        """Raise ValueError naming the first problem of arrays made by ``to_arrays``."""
        missing = [name for name in ARRAY_NAMES if name not in arrays]
        if missing:
            raise ValueError(f'spatial memory arrays miss {missing}')
        count = len(arrays['keys'])
        expected = {'keys': (np.int64, (count,)), 'xyz': (np.float32, (count, 3)),
                    'rgb': (np.uint8, (count, 3)), 'last_seen': (np.int64, (count,)),
                    'weight': (np.float32, (count,)), 'voxel_size': (np.float64, ()),
                    'robot_position': (np.float64, (3,)), 'clock': (np.int64, ())}
        for name, (dtype, shape) in expected.items():
            value = np.asarray(arrays[name])
            if value.dtype != dtype or value.shape != shape:
                raise ValueError(f'spatial memory array {name!r} must be {np.dtype(dtype)} '
                                 f'{shape}, got {value.dtype} {value.shape}')
        keys = arrays['keys']
        if count and (keys[0] < 0 or np.any(np.diff(keys) <= 0)):
            raise ValueError('spatial memory keys must be non-negative and strictly increasing')
        if not (np.all(np.isfinite(arrays['xyz'])) and np.all(np.isfinite(
                arrays['robot_position'])) and np.all(arrays['weight'] > 0)):
            raise ValueError('spatial memory xyz, robot_position and weight must be finite, '
                             'weights positive')
        if not _positive(float(arrays['voxel_size'])):
            raise ValueError(f'spatial memory voxel_size {arrays["voxel_size"]} is not positive')

    @classmethod
    def from_arrays(cls, arrays, config=None) -> 'SpatialMemory':
        """
        Rebuild a memory from ``to_arrays`` output.

        Without ``config`` the stored voxel size is used; a config with another voxel size is
        refused (keys depend on it). A smaller ``max_points`` evicts at once.
        """
        cls.check_arrays(arrays)
        stored_voxel = float(arrays['voxel_size'])
        if config is None:
            config = SpatialMemoryConfig(voxel_size=stored_voxel)
        elif not math.isclose(config.voxel_size, stored_voxel, rel_tol=1e-9):
            raise ValueError(f'stored voxel_size {stored_voxel} differs from the configured '
                             f'{config.voxel_size}')
        memory = cls(config)
        table = _Table(*(np.array(arrays[f.name]) for f in fields(_Table)))
        with memory._lock:
            memory._set_main(table)
            memory._robot_position = np.array(arrays['robot_position'], dtype=np.float64)
            memory._clock = int(arrays['clock'])
            memory._evict_over_cap()
        return memory


def _check_stamp(stamp):
    if isinstance(stamp, (bool, np.bool_)) or not isinstance(stamp, (int, np.integer)) \
            or stamp < 0:
        raise ValueError(f'stamp must be a non-negative integer of nanoseconds, got {stamp!r}')
    return int(stamp)


def _finite(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)


def _positive(value):
    return _finite(value) and value > 0


def _whole(value, minimum):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) \
        and value >= minimum
