"""Pure pursuit: simulated robots follow straight, L and U paths to their ends."""

import math

from mowm_ros.data.exploration import FORWARD, FORWARD_LEFT, FORWARD_RIGHT, LEFT, RIGHT
from mowm_ros.data.maze_robot import twist_to_action
from mowm_ros.planning.follower import path_positions, PathFollower, PathFollowerConfig
from mowm_ros.planning.paths import base_yaw, planar_base_pose
import numpy as np
import pytest

STRAIGHT = np.array([[0.0, 0.0], [3.0, 0.0]])
L_SHAPE = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0]])
U_SHAPE = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [0.0, 1.0]])


def distance_to_path(point, path):
    best = math.inf
    for a, b in zip(path[:-1], path[1:]):
        t = np.clip(np.dot(point - a, b - a) / np.dot(b - a, b - a), 0.0, 1.0)
        best = min(best, float(np.linalg.norm(a + t * (b - a) - point)))
    return best


def unicycle(follower, path, x, y, yaw, dt=0.1, steps=400):
    """Integrate exact unicycle motion under the follower; return the trajectory and done."""
    trajectory = [(x, y)]
    for _ in range(steps):
        linear, angular, done = follower.command(planar_base_pose(x, y, yaw), path)
        if done:
            return np.array(trajectory), True
        assert linear >= 0.0, 'the follower must never reverse'
        assert abs(angular) <= follower.config.max_turn_rate + 1e-9
        assert linear <= follower.config.max_speed + 1e-9
        if abs(angular) < 1e-9:
            x, y = x + linear * dt * math.cos(yaw), y + linear * dt * math.sin(yaw)
        else:
            radius = linear / angular
            x += radius * (math.sin(yaw + angular * dt) - math.sin(yaw))
            y -= radius * (math.cos(yaw + angular * dt) - math.cos(yaw))
        yaw += angular * dt
        trajectory.append((x, y))
    return np.array(trajectory), False


@pytest.mark.parametrize('name, path, start_yaw', [
    ('straight', STRAIGHT, 0.0), ('straight, facing away', STRAIGHT, math.pi),
    ('L', L_SHAPE, 0.3), ('U', U_SHAPE, -math.pi / 2)])
def test_a_unicycle_follows_the_path_to_its_end(name, path, start_yaw):
    follower = PathFollower(PathFollowerConfig(lookahead_m=0.4, goal_tolerance_m=0.1))
    trajectory, done = unicycle(follower, path, 0.0, 0.0, start_yaw)
    assert done, f'{name}: not done, ended at {trajectory[-1]}'
    assert np.linalg.norm(trajectory[-1] - path[-1]) <= 0.1
    # It went along the path, not straight across (the U's end is 1 m from its start).
    deviation = max(distance_to_path(p, path) for p in trajectory)
    assert deviation < 0.3, f'{name}: strayed {deviation:.2f} m from the path'
    travelled = np.linalg.norm(np.diff(trajectory, axis=0), axis=1).sum()
    length = np.linalg.norm(np.diff(path, axis=0), axis=1).sum()
    assert length - 0.5 <= travelled <= length + 0.6     # pure pursuit cuts corners a little


def maze_step(x, y, yaw, action):
    """Memory Maze's discrete moves at speed: 0.5 m forward and 0.32 rad per 0.25 s step."""
    turn = {LEFT: 0.32, FORWARD_LEFT: 0.32, RIGHT: -0.32, FORWARD_RIGHT: -0.32}.get(action, 0.0)
    if action in (FORWARD, FORWARD_LEFT, FORWARD_RIGHT):
        heading = yaw + turn / 2
        x, y = x + 0.5 * math.cos(heading), y + 0.5 * math.sin(heading)
    return x, y, yaw + turn


@pytest.mark.parametrize('path', [STRAIGHT * 2, L_SHAPE * 1.5, U_SHAPE * 1.5],
                         ids=['straight', 'L', 'U'])
def test_a_memory_maze_robot_on_discrete_actions_reaches_the_end(path):
    follower = PathFollower()          # the defaults are tuned for this robot
    x, y, yaw = 0.0, 0.0, 0.0
    for step in range(80):
        linear, angular, done = follower.command(planar_base_pose(x, y, yaw), path)
        if done:
            break
        x, y, yaw = maze_step(x, y, yaw, twist_to_action(linear, angular))
        assert distance_to_path(np.array([x, y]), path) < 0.6
    assert done, f'not done after {step} steps at ({x:.2f}, {y:.2f})'
    assert np.hypot(x - path[-1, 0], y - path[-1, 1]) <= 0.4


def test_poses_and_positions_are_the_same_path():
    poses = np.stack([planar_base_pose(x, y, 0.0) for x, y in L_SHAPE])
    robot = planar_base_pose(0.2, 0.1, 0.1)
    from_poses = PathFollower().command(robot, poses)
    from_positions = PathFollower().command(robot, L_SHAPE)
    assert from_poses == pytest.approx(from_positions)
    np.testing.assert_array_equal(path_positions(poses), L_SHAPE)


def test_turns_in_place_towards_a_path_behind_and_stops_at_the_end():
    follower = PathFollower(PathFollowerConfig(max_turn_rate=0.7))
    linear, angular, done = follower.command(planar_base_pose(0.0, 0.0, math.pi), STRAIGHT)
    assert linear == 0.0 and abs(angular) == pytest.approx(0.7) and not done
    # Slightly left of a straight path, facing along it: steer right while driving.
    linear, angular, done = follower.command(planar_base_pose(1.0, 0.1, 0.0), STRAIGHT)
    assert linear > 0 and angular < 0 and not done
    assert follower.command(planar_base_pose(2.9, 0.0, 0.0), STRAIGHT) == (0.0, 0.0, True)


def test_a_new_path_starts_from_the_nearest_point_and_progress_never_goes_back():
    follower = PathFollower(PathFollowerConfig(lookahead_m=0.5))
    follower.command(planar_base_pose(1.0, 0.0, 0.0), STRAIGHT)
    assert follower.progress == pytest.approx(1.0)
    # On the U's first leg near its end: the last leg lies 1 m away, progress stays on leg 1.
    follower.command(planar_base_pose(0.2, 0.0, 0.0), U_SHAPE)
    assert follower.progress == pytest.approx(0.2)
    follower.command(planar_base_pose(0.2, 0.9, 0.0), U_SHAPE)
    assert follower.progress <= 0.2 + follower.config.search_window_m
    assert follower.progress >= 0.2
    follower.reset()
    assert follower.progress == 0.0 and follower.path_length == 0.0


@pytest.mark.parametrize('name, value', [
    ('lookahead_m', 0.0), ('max_speed', -1.0), ('max_turn_rate', math.nan),
    ('goal_tolerance_m', math.inf), ('heading_gain', 0), ('turn_in_place_angle', 4.0),
    ('search_window_m', 'far'), ('max_speed', True)])
def test_bad_configuration_is_refused_naming_the_field(name, value):
    with pytest.raises(ValueError, match=name):
        PathFollowerConfig(**{name: value})


@pytest.mark.parametrize('path, message', [
    (np.array([[1.0, 2.0]]), 'at least 2 points'),
    (np.zeros((0, 2)), 'at least 2 points'),
    (np.array([[0.0, 0.0], [np.nan, 1.0]]), 'NaN or infinite'),
    (np.array([[0.0, 0.0], [np.inf, 1.0]]), 'NaN or infinite'),
    (np.array([[1.0, 1.0], [1.0, 1.0]]), 'no length'),
    (np.zeros((3, 3)), 'shape'),
    (np.zeros((2, 3, 3)), 'shape')])
def test_degenerate_paths_are_refused_with_the_reason(path, message):
    with pytest.raises(ValueError, match=message):
        PathFollower().command(np.eye(4), path)


def test_a_non_finite_robot_pose_is_refused():
    pose = np.eye(4)
    pose[0, 3] = np.nan
    with pytest.raises(ValueError, match='base_pose'):
        PathFollower().command(pose, STRAIGHT)
    assert base_yaw(np.eye(4)) == 0.0
