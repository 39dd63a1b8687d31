"""
Pure pursuit: velocity commands that drive a planar robot along a path.

``PathFollower.command(base_pose, path)`` returns ``(linear_x, angular_z, done)``. It aims at
the point ``lookahead_m`` along the path ahead of the robot's progress: when that point lies
within ``turn_in_place_angle`` of the heading the robot drives on the pure-pursuit arc through
it, otherwise it turns in place towards it (it never reverses: a Memory Maze robot cannot).
``done`` is true, with a zero command, once the robot is within ``goal_tolerance_m`` of the
path's last point after following it to its end.

Progress along a path only moves forward, within ``search_window_m`` of where it was, so a
path that folds back near itself (a U) is followed leg by leg instead of short-cut. A path that
differs from the previous call's starts again from the point nearest to the robot.
"""

from dataclasses import dataclass, fields
import math

from mowm_ros.planning.paths import base_yaw
import numpy as np


@dataclass
class PathFollowerConfig:
    # The defaults are those of config/path_follower.yaml (the node's defaults too): tuned for
    # the simulated Memory Maze robot, whose discrete steps are 0.5 m and 0.32 rad, and used by
    # the closed navigation loop over DDS (test_nav_loop_dds.py).
    lookahead_m: float = 0.8           # distance along the path to the point aimed at
    max_speed: float = 0.5             # m/s
    max_turn_rate: float = 1.2         # rad/s
    goal_tolerance_m: float = 0.4      # done within this distance of the last point
    heading_gain: float = 2.0          # turn rate per radian of heading error, in place
    turn_in_place_angle: float = 0.8   # rad: a larger heading error turns without driving
    search_window_m: float = 1.5       # how far progress may advance in one call

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f'{field.name} must be a finite number > 0, got {value!r}')
        if self.turn_in_place_angle > math.pi:
            raise ValueError(f'turn_in_place_angle must be <= pi, got '
                             f'{self.turn_in_place_angle}')


def path_positions(path) -> np.ndarray:
    """
    Return the (N, 2) positions of ``path``: (N, 4, 4) base poses or (N, 2) positions.

    Consecutive repeated points are merged. Raises ValueError naming the problem when the
    path has another shape, non-finite values, fewer than two points or no length.
    """
    array = np.asarray(path, dtype=np.float64)
    if array.ndim == 3 and array.shape[1:] == (4, 4):
        positions = array[:, :2, 3]
    elif array.ndim == 2 and array.shape[1] == 2:
        positions = array
    else:
        raise ValueError('path must be (N, 4, 4) base poses or (N, 2) positions, got shape '
                         f'{array.shape}')
    if not np.all(np.isfinite(array)):
        raise ValueError('path contains NaN or infinite values')
    if len(positions) < 2:
        raise ValueError(f'path needs at least 2 points, got {len(positions)}')
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    positions = np.concatenate([positions[:1], positions[1:][steps > 1e-9]])
    if len(positions) < 2:
        raise ValueError('path has no length: all its points coincide')
    return positions


class PathFollower:
    """Follow one path at a time with pure pursuit; see the module docstring."""

    def __init__(self, config=None) -> None:
        self.config = config or PathFollowerConfig()
        self._positions = None
        self._cumulative = None
        self.progress = 0.0            # metres along the current path

    @property
    def path_length(self) -> float:
        return float(self._cumulative[-1]) if self._cumulative is not None else 0.0

    def reset(self) -> None:
        """Forget the current path: the next one starts from the point nearest the robot."""
        self._positions = self._cumulative = None
        self.progress = 0.0

    def command(self, base_pose, path) -> tuple:
        """Return (linear_x m/s, angular_z rad/s, done) for the robot at ``base_pose``."""
        pose = np.asarray(base_pose, dtype=np.float64)
        if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
            raise ValueError(f'base_pose must be a finite 4x4 matrix, got shape {pose.shape}')
        positions = path_positions(path)
        c = self.config
        position = pose[:2, 3]
        if self._positions is None or not np.array_equal(positions, self._positions):
            self._positions = positions
            self._cumulative = np.concatenate(
                [[0.0], np.cumsum(np.linalg.norm(np.diff(positions, axis=0), axis=1))])
            self.progress = self._nearest(position, 0.0, self.path_length)
        else:
            self.progress = self._nearest(position, self.progress,
                                          self.progress + c.search_window_m)
        end = positions[-1]
        at_end = self.path_length - self.progress <= c.lookahead_m + c.goal_tolerance_m
        if at_end and np.linalg.norm(end - position) <= c.goal_tolerance_m:
            return 0.0, 0.0, True
        target = self._point_at(min(self.progress + c.lookahead_m, self.path_length))
        yaw = base_yaw(pose)
        dx, dy = target - position
        forward = math.cos(yaw) * dx + math.sin(yaw) * dy
        left = -math.sin(yaw) * dx + math.cos(yaw) * dy
        heading_error = math.atan2(left, forward)
        if abs(heading_error) > c.turn_in_place_angle:
            turn = float(np.clip(c.heading_gain * heading_error, -c.max_turn_rate,
                                 c.max_turn_rate))
            return 0.0, turn, False
        distance = max(math.hypot(dx, dy), 1e-6)
        curvature = 2.0 * math.sin(heading_error) / distance
        speed = c.max_speed
        if abs(speed * curvature) > c.max_turn_rate:
            speed = c.max_turn_rate / abs(curvature)    # slow down to keep the arc
        return speed, speed * curvature, False

    def _nearest(self, position, start, stop):
        """Return the arc length in [start, stop] of the path point nearest to ``position``."""
        best, best_distance = start, math.inf
        for k in range(len(self._positions) - 1):
            c0, c1 = self._cumulative[k], self._cumulative[k + 1]
            low, high = max(start, c0), min(stop, c1)
            if low > high:
                continue
            a, b = self._positions[k], self._positions[k + 1]
            length = c1 - c0
            along = float(np.dot(position - a, b - a)) / length
            s = min(max(c0 + along, low), high)
            distance = np.linalg.norm(a + (s - c0) / length * (b - a) - position)
            if distance < best_distance - 1e-12:
                best, best_distance = s, distance
        return best

    def _point_at(self, s):
        k = int(np.searchsorted(self._cumulative, s, side='right')) - 1
        k = min(max(k, 0), len(self._positions) - 2)
        a, b = self._positions[k], self._positions[k + 1]
        return a + (s - self._cumulative[k]) / (self._cumulative[k + 1] - self._cumulative[k]) \
            * (b - a)
