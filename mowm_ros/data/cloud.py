"""
Per-episode coloured point clouds that remember when each point was first seen.

A cloud is built once per episode from every frame's depth (voxel down-sampled: one point per
voxel, the first observation's position and colour), so a training sample can render "the
spatial memory as of frame L" by taking only points first seen at frames <= L: nothing seen at
a later frame, the target's included, can reach the render, not even through a colour.
Points are grouped in square buckets on the ground plane so a render only touches the buckets
near the camera and in front of it.
"""

from dataclasses import dataclass
import math

from mowm_ros import geometry, render
import numpy as np

_KEY_OFFSET = 1 << 20      # voxel indices are shifted into [0, 2^21) before packing


@dataclass
class CloudConfig:
    voxel: float = 0.05          # metres: one point per voxel
    max_depth: float = 12.0      # metres: farther pixels are not added
    pixel_stride: int = 1        # use every pixel_stride-th pixel of each frame
    bucket: float = 2.0          # metres: side of the ground-plane buckets used for culling
    chunk_frames: int = 64       # frames de-duplicated together while building


@dataclass
class RenderConfig:
    point_size: float = 0.1      # metres: splat footprint (half-side radius grows when near)
    max_radius: int = 2          # pixels
    max_range: float = 12.0      # metres: farther buckets are not rendered


@dataclass
class EpisodeCloud:
    points: np.ndarray           # float32 (N, 3) world
    colors: np.ndarray           # uint8 (N, 3)
    first_frame: np.ndarray      # int32 (N,) frame that first saw the point
    bucket_centres: np.ndarray   # float64 (B, 2)
    bucket_start: np.ndarray     # int64 (B + 1,) points of bucket b: [start[b], start[b+1])
    order_key: np.ndarray        # int64 (N,) bucket * frame_span + first_frame, sorted
    frame_span: int              # more than any first_frame
    bucket_size: float           # metres

    def __len__(self):
        return len(self.points)

    def select(self, last_frame, pose=None, K=None, width=None, max_range=math.inf):
        """
        Return the indices of the points first seen at frames <= ``last_frame``.

        With a camera (``pose``, ``K``, ``width``), only buckets within ``max_range`` and
        inside the horizontal field of view (widened by a bucket's size) are kept.
        """
        if len(self.points) == 0 or last_frame < 0:
            return np.zeros(0, np.int64)
        buckets = np.arange(len(self.bucket_centres))
        if pose is not None:
            buckets = self._buckets_in_view(pose, K, width, max_range)
        span = self.frame_span
        lo = self.bucket_start[buckets]
        hi = np.searchsorted(self.order_key, buckets * span + min(last_frame, span - 1),
                             side='right')
        lengths = np.maximum(hi - lo, 0)
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, np.int64)
        offsets = np.repeat(lo - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        return offsets + np.arange(total)

    def _buckets_in_view(self, pose, K, width, max_range):
        position = pose[:2, 3]
        yaw = float(geometry.camera_forward_yaw(pose))
        offset = self.bucket_centres - position
        distance = np.hypot(offset[:, 0], offset[:, 1])
        bucket_radius = 0.5 * math.sqrt(2.0) * self.bucket_size
        half_fov = math.atan2(0.5 * width, K[0, 0])
        with np.errstate(invalid='ignore', divide='ignore'):
            widen = np.arcsin(np.clip(bucket_radius / distance, 0.0, 1.0))
        bearing = np.abs(geometry.wrap_angle(np.arctan2(offset[:, 1], offset[:, 0]) - yaw))
        near = distance <= bucket_radius * 1.01
        keep = (distance <= max_range + bucket_radius) & (near | (bearing <= half_fov + widen))
        return np.nonzero(keep)[0]

    def render(self, last_frame, pose, K, width, height, config=None):
        """Render the memory as of ``last_frame`` from camera ``pose`` (render.RenderedView)."""
        config = config or RenderConfig()
        chosen = self.select(last_frame, pose, K, width, config.max_range)
        return render.render_points(self.points[chosen], self.colors[chosen], pose, K, width,
                                    height, point_size=config.point_size,
                                    max_radius=config.max_radius, far=config.max_range)


def _voxel_keys(points, voxel):
    index = np.floor(points / voxel).astype(np.int64) + _KEY_OFFSET
    return (index[:, 0] << 42) | (index[:, 1] << 21) | index[:, 2]


def build_cloud(rgb, depth, pose, K, config=None):
    """Return the EpisodeCloud of frames ``rgb`` (T, H, W, 3), ``depth`` (T, H, W), ``pose``."""
    config = config or CloudConfig()
    stride = config.pixel_stride
    chunks = []
    for start in range(0, len(depth), config.chunk_frames):
        points, colors, frames = [], [], []
        for t in range(start, min(start + config.chunk_frames, len(depth))):
            sampled = depth[t][::stride, ::stride]
            K_sampled = geometry.scale_intrinsics(K, depth[t].shape[::-1], sampled.shape[::-1])
            world, valid = geometry.unproject_depth(sampled, K_sampled, pose[t],
                                                    max_depth=config.max_depth)
            points.append(world.astype(np.float32))
            colors.append(rgb[t][::stride, ::stride][valid])
            frames.append(np.full(len(world), t, np.int32))
        points, colors, frames = (np.concatenate(x) for x in (points, colors, frames))
        # np.unique sorts stably, so return_index picks each voxel's earliest observation.
        _, first = np.unique(_voxel_keys(points, config.voxel), return_index=True)
        chunks.append((points[first], colors[first], frames[first]))
    if not chunks:
        chunks.append((np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8),
                       np.zeros(0, np.int32)))
    points, colors, frames = (np.concatenate(x) for x in zip(*chunks))
    order = np.argsort(frames, kind='stable')
    points, colors, frames = points[order], colors[order], frames[order]
    _, first = np.unique(_voxel_keys(points, config.voxel), return_index=True)
    points, colors, frames = points[first], colors[first], frames[first]

    cell = np.floor(points[:, :2] / config.bucket).astype(np.int64)
    cell_keys = (cell[:, 0] + _KEY_OFFSET) << 22 | (cell[:, 1] + _KEY_OFFSET)
    unique_cells, bucket = np.unique(cell_keys, return_inverse=True)
    span = int(frames.max()) + 2 if len(frames) else 1
    order_key = bucket.astype(np.int64) * span + frames
    order = np.argsort(order_key, kind='stable')
    starts = np.searchsorted(order_key[order], np.arange(len(unique_cells) + 1) * span)
    centres = np.stack([((unique_cells >> 22) - _KEY_OFFSET + 0.5) * config.bucket,
                        ((unique_cells & ((1 << 22) - 1)) - _KEY_OFFSET + 0.5) * config.bucket],
                       axis=-1).astype(np.float64)
    return EpisodeCloud(points=points[order], colors=colors[order],
                        first_frame=frames[order], bucket_centres=centres,
                        bucket_start=starts.astype(np.int64), order_key=order_key[order],
                        frame_span=span, bucket_size=config.bucket)
