"""The simulated Memory Maze robot: the plain simulation, and the node over real DDS."""

import math
from pathlib import Path
import re
import shutil
import subprocess
import sys
import time

from camera_recorder import CameraRecorder
from geometry_msgs.msg import Twist
from lint_paths import REPO_ROOT
from mowm_ros import geometry
from mowm_ros.data.exploration import (FORWARD, FORWARD_LEFT, FORWARD_RIGHT, LEFT, NOOP,
                                       RIGHT)
from mowm_ros.data.maze_env import generate_episode, GenerationConfig
from mowm_ros.data.maze_robot import MazeRobot, twist_to_action
from mowm_ros.extrinsics import CAMERA_MOUNT, DEFAULT_EXTRINSICS, extrinsics_matrix
from mowm_ros.nodes import conversions
import numpy as np
import pytest
from rclpy.parameter import Parameter
from ros_harness import wait_for

pytest.importorskip('memory_maze')

SEED = 0                   # spawns in a long corridor, facing along it
REFERENCE_FRAMES = 24


@pytest.fixture(scope='module')
def reference():
    """Generate the data generator's episode for SEED: the route explore mode must follow."""
    return generate_episode(SEED, GenerationConfig(steps=REFERENCE_FRAMES))[0]


@pytest.fixture(scope='module')
def robot():
    maze_robot = MazeRobot(seed=SEED)
    yield maze_robot
    maze_robot.close()


# The simulation, without ROS ------------------------------------------------------------

@pytest.mark.parametrize('linear_x, angular_z, action', [
    (0.0, 0.0, NOOP), (0.5, 0.0, FORWARD), (0.0, 1.0, LEFT), (0.0, -1.0, RIGHT),
    (0.5, 0.5, FORWARD_LEFT), (0.5, -0.5, FORWARD_RIGHT), (0.04, 0.09, NOOP),
    (-1.0, 0.0, NOOP), (-1.0, 1.0, LEFT)])
def test_twist_maps_to_the_maze_actions(linear_x, angular_z, action):
    assert twist_to_action(linear_x, angular_z) == action


def test_explore_follows_the_generators_route_exactly(robot, reference):
    frames = [robot.frame]
    for _ in range(REFERENCE_FRAMES - 1):
        frames.append(robot.step(robot.explore_action()))
    np.testing.assert_array_equal(np.stack([f.rgb for f in frames]), reference.rgb)
    np.testing.assert_array_equal(np.stack([f.pose for f in frames]), reference.pose)
    np.testing.assert_array_equal(np.stack([f.depth for f in frames]), reference.depth)
    np.testing.assert_allclose(frames[-1].K, reference.K)
    assert [f.step for f in frames] == list(range(REFERENCE_FRAMES))


def test_the_maze_time_limit_is_lifted_and_a_finite_one_respawns(robot, reference):
    physics = robot.camera.physics
    physics.data.time = 300.0                 # past Memory Maze's 250 s for 9x9
    frame = robot.step(NOOP)
    assert not frame.respawned and robot.respawns == 0
    with pytest.raises(ValueError, match='action'):
        robot.step(6)
    robot.time_limit = physics.time() + 0.4   # steps are 0.25 s: the second one ends it
    steps = robot.steps
    assert not robot.step(FORWARD).respawned
    frame = robot.step(FORWARD)
    # Respawned in the same maze, at the same spawn; steps keep counting.
    assert frame.respawned and robot.respawns == 1 and frame.step == steps + 2
    np.testing.assert_allclose(frame.pose, reference.pose[0], atol=1e-6)
    np.testing.assert_array_equal(robot.grid.layout, reference.extras['maze_layout'])
    assert frame.action == -1 and robot.camera.physics.time() < 1.0


def test_a_diverged_physics_step_respawns_the_robot(robot, monkeypatch):
    from dm_control.rl.control import PhysicsError

    def diverge(action):
        raise PhysicsError('simulated divergence')

    starts = []
    monkeypatch.setattr(robot.env, 'step', diverge)
    monkeypatch.setattr(robot.env, 'close', lambda: None)
    monkeypatch.setattr(robot, '_start', lambda respawned: starts.append(respawned))
    respawns = robot.respawns
    robot.step(FORWARD)
    assert starts == [True] and robot.respawns == respawns + 1


# The node over real DDS ------------------------------------------------------------------

def yaw_of(base):
    return math.atan2(base[1, 0], base[0, 0])


def check_frames(recorder, size, camera_frame='camera_optical_frame'):
    """Check every received message; return the stamps at which all four topics arrived."""
    by_stamp = recorder.by_stamp()
    for image in by_stamp['rgb'].values():
        assert image.header.frame_id == camera_frame and image.encoding == 'rgb8'
        assert conversions.image_to_rgb(image).shape == (size, size, 3)
    for image in by_stamp['depth'].values():
        assert image.header.frame_id == camera_frame and image.encoding == '32FC1'
        depth = conversions.image_to_depth(image)
        assert depth.shape == (size, size) and np.nanmin(depth) > 0
    for info in by_stamp['info'].values():
        assert info.header.frame_id == camera_frame
        K, image_size = conversions.camera_info_to_intrinsics(info)
        assert image_size == (size, size)
        np.testing.assert_allclose(K, geometry.intrinsics_from_fovy(80.0, size, size))
    for odom in by_stamp['odom'].values():
        assert odom.header.frame_id == 'odom' and odom.child_frame_id == 'base_link'
    complete = sorted(set.intersection(*(set(m) for m in by_stamp.values())))
    assert complete == sorted(complete) and len(set(by_stamp['rgb'])) == len(by_stamp['rgb'])
    return by_stamp, complete


@pytest.mark.ros
def test_explore_mode_publishes_the_generators_route_over_dds(ros, reference):
    from mowm_ros.nodes.sim_robot import SimRobot

    recorder = CameraRecorder(ros.node('recorder'))
    node = ros.add(SimRobot(context=ros.context, parameter_overrides=[
        Parameter('seed', value=SEED), Parameter('mode', value='explore'),
        Parameter('rate_hz', value=20.0), Parameter('max_steps', value=REFERENCE_FRAMES - 1)]))
    assert wait_for(lambda: node.finished, timeout=30)
    assert node.frames_published == REFERENCE_FRAMES and node.robot.steps == REFERENCE_FRAMES - 1
    assert wait_for(lambda: recorder.count() >= 10, timeout=5)
    by_stamp, complete = check_frames(recorder, 64)
    extrinsics = extrinsics_matrix(DEFAULT_EXTRINSICS)
    indices = []
    for stamp in complete:
        _, base = conversions.odometry_to_pose(by_stamp['odom'][stamp])
        camera = base @ extrinsics
        index = int(np.argmin(np.abs(reference.pose - camera).sum(axis=(1, 2))))
        # Odometry composed with the extrinsics is the camera pose of the very same frame.
        np.testing.assert_allclose(camera, reference.pose[index], atol=1e-6)
        np.testing.assert_array_equal(conversions.image_to_rgb(by_stamp['rgb'][stamp]),
                                      reference.rgb[index])
        np.testing.assert_allclose(conversions.image_to_depth(by_stamp['depth'][stamp]),
                                   reference.depth[index], equal_nan=True)
        indices.append(index)
    assert indices == sorted(indices) and len(indices) >= 10
    travelled = np.linalg.norm(reference.pose[indices[-1], :2, 3] - reference.pose[indices[0],
                                                                                   :2, 3])
    assert travelled > 0.5, 'explore mode did not move the robot'
    time.sleep(0.3)
    assert recorder.count('rgb') <= REFERENCE_FRAMES       # stopped at max_steps


def drive(publisher, twist, until, timeout=20.0):
    """Publish ``twist`` every 50 ms until ``until()`` is true."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, 'timed out driving'
        publisher.publish(twist)
        time.sleep(0.05)


def twist(linear_x=0.0, angular_z=0.0):
    msg = Twist()
    msg.linear.x, msg.angular.z = float(linear_x), float(angular_z)
    return msg


@pytest.mark.ros
def test_cmd_vel_drives_turns_stops_and_nan_is_rejected(ros, reference):
    from mowm_ros.nodes.sim_robot import SimRobot

    recorder = CameraRecorder(ros.node('recorder'))
    publisher = ros.node('driver').create_publisher(Twist, 'cmd_vel', 10)
    node = ros.add(SimRobot(context=ros.context, parameter_overrides=[
        Parameter('seed', value=SEED), Parameter('rate_hz', value=20.0),
        Parameter('image_size', value=32), Parameter('cmd_vel_timeout', value=0.3),
        Parameter('camera_extrinsics', value=CAMERA_MOUNT)]))
    mount = extrinsics_matrix(CAMERA_MOUNT)

    # No command: the robot stays at its spawn; odometry is its level pose on the floor.
    assert wait_for(lambda: recorder.count() >= 4, timeout=20)
    by_stamp, complete = check_frames(recorder, 32)
    assert len(complete) >= 2
    for stamp in complete:
        _, base = conversions.odometry_to_pose(by_stamp['odom'][stamp])
        np.testing.assert_allclose(base @ mount, reference.pose[0], atol=2e-3)
        assert abs(base[2, 3]) < 2e-3 and abs(base[2, 2] - 1.0) < 1e-6

    def steps_after(count):
        target = node.robot.steps + count
        return lambda: node.robot.steps >= target

    # Forward: the base moves along its heading, at the maze's speed (about 2 m/s).
    start = recorder.last_base()
    drive(publisher, twist(linear_x=0.5), steps_after(6))
    time.sleep(0.1)
    moved = recorder.last_base()
    ahead = (moved[:2, 3] - start[:2, 3]) @ start[:2, 0]
    assert ahead > 1.0, f'moved {ahead:.2f} m forward'
    assert abs(geometry.wrap_angle(yaw_of(moved) - yaw_of(start))) < 0.05
    with recorder.lock:
        assert max(m.twist.twist.linear.x for m in recorder.messages['odom']) > 1.0

    # Turning left increases the yaw.
    drive(publisher, twist(angular_z=1.0), steps_after(4))
    time.sleep(0.1)
    turned = recorder.last_base()
    assert 0.6 < geometry.wrap_angle(yaw_of(turned) - yaw_of(moved)) < math.pi

    # No new command: after cmd_vel_timeout the robot stops.
    stale = node.stale_steps
    assert wait_for(lambda: node.stale_steps >= stale + 4, timeout=10)
    time.sleep(0.1)
    stopped = recorder.last_base()
    assert wait_for(steps_after(3), timeout=10)
    time.sleep(0.1)
    np.testing.assert_allclose(recorder.last_base(), stopped, atol=1e-3)

    # A NaN command is rejected and counted; the robot does not move and keeps publishing.
    drive(publisher, twist(linear_x=math.nan), lambda: node.rejected_commands >= 2)
    drive(publisher, twist(angular_z=math.inf, linear_x=0.5), lambda: node.rejected_commands >= 3)
    frames = recorder.count('rgb')
    assert wait_for(lambda: recorder.count('rgb') >= frames + 3, timeout=10)
    np.testing.assert_allclose(recorder.last_base(), stopped, atol=1e-3)
    drive(publisher, twist(linear_x=0.5), steps_after(2))   # and obeys valid commands again
    time.sleep(0.1)
    assert np.linalg.norm(recorder.last_base()[:2, 3] - stopped[:2, 3]) > 0.2


def console_command():
    """Return the sim_robot executable: installed, or its setup.py entry point run here."""
    installed = shutil.which('sim_robot', path=str(Path(sys.executable).parent))
    if installed:
        return [installed]
    setup = (REPO_ROOT / 'setup.py').read_text()
    module, function = re.search(r"'sim_robot = ([\w.]+):(\w+)'", setup).groups()
    return [sys.executable, '-c', f'from {module} import {function}; {function}()']


@pytest.mark.ros
def test_console_script_in_its_own_process_with_ros_args(ros):
    recorder = CameraRecorder(ros.node('recorder'), namespace='/robot')
    process = subprocess.Popen(
        console_command() + ['--ros-args', '-r', '__ns:=/robot', '-p', 'mode:=explore',
                             '-p', 'rate_hz:=20', '-p', 'image_size:=16',
                             '-p', 'publish_depth:=false', '-p', 'seed:=3'],
        env=ros.subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(lambda: recorder.count('odom') >= 3, timeout=30), 'no frames received'
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert 'Memory Maze 9x9 seed 3, 16x16 camera' in output, output
    assert recorder.count('rgb') >= 1 and recorder.count('depth') == 0
    with recorder.lock:
        assert recorder.messages['rgb'][-1].width == 16


@pytest.mark.ros
@pytest.mark.parametrize('name, value', [('mode', 'fly'), ('rate_hz', 0.0),
                                         ('max_steps', -1), ('maze_size', 10),
                                         ('cmd_vel_timeout', 'soon'),
                                         ('camera_extrinsics', [0.0, 0.0, 1.0])])
def test_bad_parameters_are_refused_with_a_clear_message(ros, name, value):
    from mowm_ros.nodes.sim_robot import SimRobot

    with pytest.raises(ValueError, match=name):
        SimRobot(context=ros.context, parameter_overrides=[Parameter(name, value=value)])
