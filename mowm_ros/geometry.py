"""
Poses, intrinsics and projection: the conventions every other layer relies on.

- A pose is a 4x4 homogeneous matrix ``T_world_from_camera`` (world <- camera).
- Cameras use the optical convention of REP-103: z forward, x right, y down.
- Bodies (robot base, odometry) use x forward, y left, z up; the world is z up.
- Planar motion between model frames is (dx, dy, dyaw) in the earlier frame's body frame.
- Absolute pose features are (x, y, cos yaw, sin yaw) relative to the map origin.
"""

import math

import numpy as np
import transforms3d

# Rotation body <- optical: optical z (forward) = body x, optical x (right) = -body y,
# optical y (down) = -body z.
R_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0],
                                [-1.0, 0.0, 0.0],
                                [0.0, -1.0, 0.0]])


class GeometryError(ValueError):
    """A pose, intrinsics matrix or image geometry that cannot be used."""


def make_pose(rotation, translation):
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = translation
    return pose


def invert_pose(pose):
    """Invert a rigid transform without a general matrix inverse."""
    rotation = pose[..., :3, :3]
    translation = pose[..., :3, 3]
    inverse = np.zeros_like(pose)
    inverse[..., :3, :3] = np.swapaxes(rotation, -1, -2)
    inverse[..., :3, 3] = -np.einsum('...ji,...j->...i', rotation, translation)
    inverse[..., 3, 3] = 1.0
    return inverse


def check_pose(pose, name='pose'):
    """Return ``pose`` as float64 4x4 or raise GeometryError naming what is wrong."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (4, 4):
        raise GeometryError(f'{name} must be 4x4, got shape {pose.shape}')
    if not np.all(np.isfinite(pose)):
        raise GeometryError(f'{name} contains NaN or infinite values')
    rotation = pose[:3, :3]
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4):
        raise GeometryError(f'{name} rotation is not orthonormal')
    if not np.allclose(pose[3], [0.0, 0.0, 0.0, 1.0]):
        raise GeometryError(f'{name} last row must be [0, 0, 0, 1]')
    return pose


def intrinsics_from_fovy(fovy_deg, width, height):
    """Pinhole intrinsics with square pixels and the centre at ((w-1)/2, (h-1)/2)."""
    focal = (height / 2.0) / math.tan(math.radians(fovy_deg) / 2.0)
    return np.array([[focal, 0.0, (width - 1) / 2.0],
                     [0.0, focal, (height - 1) / 2.0],
                     [0.0, 0.0, 1.0]])


def scale_intrinsics(K, from_size, to_size):
    """Intrinsics of the same camera resampled from (w, h) ``from_size`` to ``to_size``."""
    sx = to_size[0] / from_size[0]
    sy = to_size[1] / from_size[1]
    scaled = np.array(K, dtype=np.float64)
    scaled[0, 0] *= sx
    scaled[1, 1] *= sy
    # Pixel centres: continuous coordinate u + 0.5 scales, so u' = (u + 0.5) * s - 0.5.
    scaled[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    scaled[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return scaled


def check_intrinsics(K, name='K'):
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise GeometryError(f'{name} must be 3x3, got shape {K.shape}')
    if not np.all(np.isfinite(K)):
        raise GeometryError(f'{name} contains NaN or infinite values')
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise GeometryError(f'{name} focal lengths must be positive, got {K[0, 0]}, {K[1, 1]}')
    return K


def camera_forward_yaw(pose):
    """Heading of an optical camera: the world yaw of its z (forward) axis."""
    forward = pose[..., :3, 2]
    return np.arctan2(forward[..., 1], forward[..., 0])


def planar_pose(pose):
    """(x, y, yaw) of an optical camera pose in a z-up world."""
    return np.stack([pose[..., 0, 3], pose[..., 1, 3], camera_forward_yaw(pose)], axis=-1)


def wrap_angle(angle):
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


def relative_motion(pose_from, pose_to):
    """(dx, dy, dyaw) taking camera ``pose_from`` to ``pose_to``, in pose_from's body frame."""
    x0, y0, yaw0 = np.moveaxis(planar_pose(pose_from), -1, 0)
    x1, y1, yaw1 = np.moveaxis(planar_pose(pose_to), -1, 0)
    dx_world, dy_world = x1 - x0, y1 - y0
    cos0, sin0 = np.cos(yaw0), np.sin(yaw0)
    return np.stack([cos0 * dx_world + sin0 * dy_world,
                     -sin0 * dx_world + cos0 * dy_world,
                     wrap_angle(yaw1 - yaw0)], axis=-1)


def absolute_pose_features(pose, origin=None):
    """
    (x, y, cos yaw, sin yaw) of camera ``pose`` in the map frame ``origin``.

    ``origin`` is a z-up frame (world <- map, x forward, z up), identity by default.
    """
    if origin is not None:
        pose = invert_pose(origin) @ pose
    x, y, yaw = np.moveaxis(planar_pose(pose), -1, 0)
    return np.stack([x, y, np.cos(yaw), np.sin(yaw)], axis=-1)


def camera_pose_from_planar(x, y, yaw, height):
    """Level optical camera at (x, y, height) looking along world yaw."""
    body = make_pose(transforms3d.euler.euler2mat(0.0, 0.0, yaw), [x, y, height])
    return body @ make_pose(R_BODY_FROM_OPTICAL, np.zeros(3))


def unproject_depth(depth, K, pose, max_depth=np.inf):
    """
    World points of the valid pixels of a z-depth image, and the boolean mask of those pixels.

    Depth is planar z in metres; NaN, non-positive or beyond ``max_depth`` is invalid.
    """
    height, width = depth.shape
    valid = np.isfinite(depth) & (depth > 0) & (depth <= max_depth)
    v, u = np.nonzero(valid)
    z = depth[v, u].astype(np.float64)
    x = (u - K[0, 2]) / K[0, 0] * z
    y = (v - K[1, 2]) / K[1, 1] * z
    points_camera = np.stack([x, y, z], axis=-1)
    points_world = points_camera @ pose[:3, :3].T + pose[:3, 3]
    return points_world, valid


def project_points(points_world, K, pose):
    """Pixel coordinates (u, v) and depth z of world points seen by the camera at ``pose``."""
    world_to_camera = invert_pose(pose)
    points_camera = points_world @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    z = points_camera[:, 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        u = K[0, 0] * points_camera[:, 0] / z + K[0, 2]
        v = K[1, 1] * points_camera[:, 1] / z + K[1, 2]
    return np.stack([u, v], axis=-1), z


def quaternion_xyzw_from_matrix(rotation):
    w, x, y, z = transforms3d.quaternions.mat2quat(rotation)
    return np.array([x, y, z, w])


def matrix_from_quaternion_xyzw(quaternion):
    x, y, z, w = quaternion
    norm = math.sqrt(x * x + y * y + z * z + w * w)
    if not math.isfinite(norm) or norm < 1e-9:
        raise GeometryError(f'quaternion {tuple(quaternion)} cannot be normalised')
    return transforms3d.quaternions.quat2mat([w / norm, x / norm, y / norm, z / norm])


def slerp(q0, q1, alpha):
    """Spherical interpolation between unit quaternions (any consistent component order)."""
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + alpha * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(min(dot, 1.0))
    return (math.sin((1 - alpha) * theta) * q0 + math.sin(alpha * theta) * q1) / math.sin(theta)


def interpolate_pose(pose0, pose1, alpha):
    """Pose a fraction ``alpha`` from pose0 to pose1 (linear position, slerp rotation)."""
    q = slerp(quaternion_xyzw_from_matrix(pose0[:3, :3]),
              quaternion_xyzw_from_matrix(pose1[:3, :3]), alpha)
    translation = (1 - alpha) * pose0[:3, 3] + alpha * pose1[:3, 3]
    return make_pose(matrix_from_quaternion_xyzw(q), translation)
