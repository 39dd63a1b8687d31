"""
Revisit labels: whether a frame shows what an earlier frame (long enough ago) already saw.

Frame i is a revisit when at least ``overlap_threshold`` of its valid depth pixels (a regular
subsample), unprojected to the world, land inside the image of one frame j that is at least
``min_gap`` earlier and agree with j's own depth there (so surfaces hidden from j do not
count). Its ``revisit_overlap`` is the best such fraction and ``revisit_source`` that j (-1 if
none). ``min_gap`` is measured on ``clock``: env steps for Memory Maze (40 steps = 10 s at
4 Hz), nanosecond stamps for recordings.
"""

from dataclasses import dataclass

from mowm_ros import geometry
import numpy as np


@dataclass
class RevisitConfig:
    min_gap_steps: int = 40           # Memory Maze env steps (10 s) between frame and source
    min_gap_seconds: float = 10.0     # the same for recordings with nanosecond stamps
    overlap_threshold: float = 0.5    # fraction of sampled pixels seen by one earlier frame
    pixel_stride: int = 4             # sample every 4th pixel in both directions
    depth_tolerance: float = 0.05     # metres, plus ...
    depth_tolerance_relative: float = 0.1   # ... this fraction of the depth
    max_depth: float = 15.0
    min_valid_fraction: float = 0.1   # fewer valid sampled pixels than this: never a revisit
    chunk: int = 256                  # earlier frames compared at once


def sample_points(depth, K, pose, stride, max_depth):
    """World points of a regular pixel subsample of ``depth`` with a valid value."""
    offset = stride // 2
    sub = np.full(depth.shape, np.nan, np.float32)
    sub[offset::stride, offset::stride] = depth[offset::stride, offset::stride]
    points, _ = geometry.unproject_depth(sub, K, pose, max_depth=max_depth)
    return points, (sub.shape[0] // stride) * (sub.shape[1] // stride)


def overlap_with(points, depths, world_to_camera, K, config):
    """Fraction of ``points`` (P, 3) seen consistently by each of the (J) cameras."""
    frames, height, width = depths.shape
    rotation = world_to_camera[:, :3, :3].astype(np.float32).reshape(frames * 3, 3)
    camera = (rotation @ points.T.astype(np.float32)).reshape(frames, 3, -1)
    camera += world_to_camera[:, :3, 3, None].astype(np.float32)
    x, y, z = camera[:, 0], camera[:, 1], camera[:, 2]
    in_front = z > 0.05
    z_safe = np.where(in_front, z, np.float32(1.0))
    u = np.rint(np.float32(K[0, 0]) * x / z_safe + np.float32(K[0, 2])).astype(np.int64)
    v = np.rint(np.float32(K[1, 1]) * y / z_safe + np.float32(K[1, 2])).astype(np.int64)
    inside = in_front & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    flat = np.where(inside, (np.arange(frames)[:, None] * height + v) * width + u, 0)
    seen = depths.reshape(-1)[flat]
    tolerance = config.depth_tolerance + config.depth_tolerance_relative * z
    with np.errstate(invalid='ignore'):
        consistent = inside & (np.abs(seen - z) <= tolerance)
    return consistent.mean(axis=1)


def revisit_labels(depth, pose, K, clock, min_gap, config=None):
    """
    Return (revisit bool (T,), overlap float32 (T,), source int32 (T,)) for an episode.

    ``depth`` (T, H, W) metres with NaN invalid, ``pose`` (T, 4, 4) world <- camera,
    ``clock`` (T,) non-decreasing, ``min_gap`` in the clock's unit.
    """
    config = config or RevisitConfig()
    frames = len(depth)
    clock = np.asarray(clock)
    depth = np.where(depth <= config.max_depth, depth, np.nan).astype(np.float32)
    world_to_camera = geometry.invert_pose(np.asarray(pose, dtype=np.float64))
    overlap = np.zeros(frames, np.float32)
    source = np.full(frames, -1, np.int32)
    # Frames 0 .. earlier[i] - 1 are at least min_gap before frame i.
    earlier = np.searchsorted(clock, clock - min_gap, side='right')
    for i in range(frames):
        if earlier[i] == 0:
            continue
        points, sampled = sample_points(depth[i], K, pose[i], config.pixel_stride,
                                        config.max_depth)
        if len(points) < config.min_valid_fraction * sampled:
            continue
        best, best_frame = 0.0, -1
        for start in range(0, earlier[i], config.chunk):
            stop = min(start + config.chunk, earlier[i])
            fractions = overlap_with(points, depth[start:stop], world_to_camera[start:stop],
                                     K, config)
            j = int(np.argmax(fractions))
            if fractions[j] > best:
                best, best_frame = float(fractions[j]), start + j
        overlap[i], source[i] = best, best_frame
    revisit = overlap >= config.overlap_threshold
    return revisit, overlap, source
