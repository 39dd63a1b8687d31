"""
Camera extrinsics: the camera optical frame in the robot's base frame, as [x y z qx qy qz qw].

One parser (``extrinsics_matrix``) and one default (``DEFAULT_EXTRINSICS``) for the nodes, the
rosbag importer and the evaluation. The default is the Memory Maze robot's camera mount, the
value config/*.yaml and the README give: measured in the simulator, the optical frame sits in a
base frame on the floor below the ball's centre (x along the heading, z up) 0.15 m ahead, 0.9 m
up, pitched down by atan(0.1), so that the odometry is the ball's planar pose.
"""

import math

from mowm_ros import geometry
import numpy as np

CAMERA_PITCH = math.atan(0.1)
_MOUNT_ROTATION = np.array([[math.cos(CAMERA_PITCH), 0.0, math.sin(CAMERA_PITCH)],
                            [0.0, 1.0, 0.0],
                            [-math.sin(CAMERA_PITCH), 0.0, math.cos(CAMERA_PITCH)]]) \
    @ geometry.R_BODY_FROM_OPTICAL
CAMERA_MOUNT = (0.15, 0.0, 0.9) + tuple(
    float(v) for v in geometry.quaternion_xyzw_from_matrix(_MOUNT_ROTATION))
DEFAULT_EXTRINSICS = CAMERA_MOUNT


def extrinsics_matrix(values, name: str = 'extrinsics') -> np.ndarray:
    """
    Return the 4x4 pose base <- camera optical of [x, y, z, qx, qy, qz, qw].

    Raise ValueError (``geometry.GeometryError``), the message starting with ``name``, for
    anything but 7 finite numbers or for a quaternion that cannot be normalised.
    """
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        numbers = None
    if numbers is None or len(numbers) != 7 or not all(math.isfinite(v) for v in numbers):
        shown = list(values) if isinstance(values, (list, tuple, np.ndarray)) else values
        raise geometry.GeometryError(
            f'{name} must be 7 finite values [x y z qx qy qz qw], got {shown!r}')
    try:
        rotation = geometry.matrix_from_quaternion_xyzw(numbers[3:])
    except geometry.GeometryError as exc:
        raise geometry.GeometryError(f'{name}: {exc}') from None
    return geometry.make_pose(rotation, numbers[:3])
