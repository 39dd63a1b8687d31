"""
Future base poses to imagine from: along a planned path, or the current velocity extrapolated.

Base poses are 4x4 world <- base (x forward, z up, REP-103); the robot moves in the plane, so
future poses keep the height and the tilt (roll, pitch) of its current pose and change only
position and yaw.
"""

import numpy as np
import transforms3d


def planar_base_pose(x, y, yaw, z=0.0, tilt=None) -> np.ndarray:
    """Pose at (x, y, z) with heading ``yaw``; ``tilt`` (3x3) is the attitude at yaw 0."""
    rotation = transforms3d.euler.euler2mat(0.0, 0.0, yaw)
    if tilt is not None:
        rotation = rotation @ tilt
    return np.array(transforms3d.affines.compose([x, y, z], rotation, np.ones(3)))


def tilt_of(pose) -> np.ndarray:
    """Return the attitude of ``pose`` with its yaw removed."""
    return transforms3d.euler.euler2mat(0.0, 0.0, -base_yaw(pose)) @ pose[:3, :3]


def base_yaw(pose) -> float:
    return float(np.arctan2(pose[1, 0], pose[0, 0]))


def extrapolate_twist(pose, linear_x, angular_z, count, dt) -> np.ndarray:
    """Return base poses after dt, 2 dt ... count dt at constant forward speed and yaw rate."""
    values = np.array([linear_x, angular_z, dt], dtype=np.float64)
    if not np.all(np.isfinite(values)) or dt <= 0 or count < 1:
        raise ValueError(f'bad extrapolation: v={linear_x}, w={angular_z}, dt={dt}, '
                         f'count={count}')
    x, y, yaw, z = pose[0, 3], pose[1, 3], base_yaw(pose), pose[2, 3]
    t = dt * np.arange(1, count + 1)
    if abs(angular_z) < 1e-6:
        xs, ys, yaws = (x + linear_x * t * np.cos(yaw), y + linear_x * t * np.sin(yaw),
                        np.full_like(t, yaw))
    else:
        radius = linear_x / angular_z
        yaws = yaw + angular_z * t
        xs = x + radius * (np.sin(yaws) - np.sin(yaw))
        ys = y - radius * (np.cos(yaws) - np.cos(yaw))
    tilt = tilt_of(pose)
    return np.stack([planar_base_pose(a, b, c, z, tilt) for a, b, c in zip(xs, ys, yaws)])


def poses_along_path(path_xy, pose, count, spacing) -> np.ndarray:
    """
    Up to ``count`` base poses ``spacing`` metres apart along a path, ahead of ``pose``.

    ``path_xy`` (N, 2) are the path's positions; walking starts at the point of the path
    nearest to the robot, headings follow the path's segments. Returns (M, 4, 4), M <= count
    (fewer when the path ends sooner; none when it has no length ahead).
    """
    path_xy = np.asarray(path_xy, dtype=np.float64)
    if path_xy.ndim != 2 or path_xy.shape[1] != 2 or not np.all(np.isfinite(path_xy)):
        raise ValueError(f'path must be finite (N, 2) positions, got {path_xy.shape}')
    if spacing <= 0:
        raise ValueError(f'spacing must be positive, got {spacing}')
    segments = np.diff(path_xy, axis=0)
    lengths = np.linalg.norm(segments, axis=1)
    keep = lengths > 1e-9
    if not keep.any():
        return np.zeros((0, 4, 4))
    starts, segments, lengths = path_xy[:-1][keep], segments[keep], lengths[keep]
    position = pose[:2, 3]
    along = np.clip(np.einsum('ij,ij->i', position - starts, segments) / lengths ** 2, 0, 1)
    nearest = starts + along[:, None] * segments
    index = int(np.argmin(np.linalg.norm(nearest - position, axis=1)))
    cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
    start = cumulative[index] + along[index] * lengths[index]
    targets = start + spacing * np.arange(1, count + 1)
    targets = targets[targets <= cumulative[-1] + 1e-9]
    poses, tilt = [], tilt_of(pose)
    for distance in targets:
        k = min(int(np.searchsorted(cumulative, distance, side='right')) - 1, len(lengths) - 1)
        fraction = (distance - cumulative[k]) / lengths[k]
        x, y = starts[k] + fraction * segments[k]
        yaw = np.arctan2(segments[k, 1], segments[k, 0])
        poses.append(planar_base_pose(x, y, yaw, pose[2, 3], tilt))
    return np.stack(poses) if poses else np.zeros((0, 4, 4))


def mosaic(images, gap=2) -> np.ndarray:
    """Tile (N, H, W, 3) uint8 images left to right with ``gap`` black columns between them."""
    images = np.asarray(images)
    count, height, width = images.shape[:3]
    out = np.zeros((height, count * width + (count - 1) * gap, 3), np.uint8)
    for i, image in enumerate(images):
        out[:, i * (width + gap):i * (width + gap) + width] = image
    return out
