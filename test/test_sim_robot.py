"""The simulated Memory Maze robot: the plain simulation, and the node over real DDS."""

import math
from pathlib import Path
import re
import shutil
import subprocess
import sys

from camera_recorder import CameraRecorder
from geometry_msgs.msg import Twist
from lint_paths import REPO_ROOT
from mowm_ros import geometry
from mowm_ros.data.exploration import (FORWARD, FORWARD_LEFT, FORWARD_RIGHT, LEFT, NOOP,
                                       RIGHT)
from mowm_ros.data.maze_env import generate_episode, GenerationConfig
from mowm_ros.data.maze_robot import MazeRobot, twist_to_action
from mowm_ros.extrinsics import CAMERA_MOUNT, extrinsics_matrix
from mowm_ros.nodes import conversions
import numpy as np
import pytest
from rclpy.parameter import Parameter
from ros_harness import publish_until, wait_for, yaw_turned

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


def test_a_diverged_physics_step_respawns_the_robot(robot, reference):
    robot.step(FORWARD)
    old_env, respawns, steps = robot.env, robot.respawns, robot.steps
    # NaN velocities make MuJoCo's next step diverge: dm_control raises its PhysicsError.
    robot.camera.physics.data.qvel[:] = np.nan
    frame = robot.step(FORWARD)
    assert frame.respawned and robot.respawns == respawns + 1 and frame.step == steps + 1
    assert robot.env is not old_env and robot.camera.physics.time() < 1.0
    # A fresh environment of the same maze, the robot at its spawn, and it drives on.
    np.testing.assert_allclose(frame.pose, reference.pose[0], atol=1e-6)
    np.testing.assert_array_equal(robot.grid.layout, reference.extras['maze_layout'])
    assert np.all(np.isfinite(robot.camera.physics.data.qvel))
    moved = robot.step(FORWARD)
    assert not moved.respawned and robot.respawns == respawns + 1
    assert np.linalg.norm(moved.pose[:2, 3] - frame.pose[:2, 3]) > 0.1


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
    assert wait_for(lambda: recorder.count() >= 10, timeout=30)
    by_stamp, complete = check_frames(recorder, 64)
    extrinsics = extrinsics_matrix(CAMERA_MOUNT)           # the default: the true mount
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
    # Stopped at max_steps: the timer is cancelled, so no further frame can come.
    assert node.timer.is_canceled() and recorder.count('rgb') <= REFERENCE_FRAMES


@pytest.mark.ros
def test_a_step_gate_holds_the_robot_and_its_stamps_count_simulated_time(ros):
    from mowm_ros.nodes.sim_robot import SimRobot

    recorder = CameraRecorder(ros.node('recorder'))
    allowed = {'frames': 0}
    node = ros.add(SimRobot(
        context=ros.context, step_gate=lambda: node.frames_published < allowed['frames'],
        parameter_overrides=[Parameter('seed', value=SEED), Parameter('mode', value='explore'),
                             Parameter('rate_hz', value=4.0), Parameter('max_steps', value=6)]))
    # Shut: it is asked again and again (counted) and nothing is published.
    wait_for(lambda: node.gated_ticks >= 3, what='three polls of the shut gate')
    assert node.frames_published == 0
    # Open for three frames: exactly three, whatever the wall time between them.
    allowed['frames'] = 3
    wait_for(lambda: recorder.count('odom') >= 3, what='three frames through the gate')
    ticks = node.gated_ticks
    wait_for(lambda: node.gated_ticks >= ticks + 3, what='three more polls of the gate')
    assert node.frames_published == 3
    allowed['frames'] = 7
    wait_for(lambda: node.finished and recorder.count('odom') >= 7, what='the route to finish')
    stamps = sorted(conversions.stamp_to_ns(m.header.stamp) for m in recorder.messages['odom'])
    # 1 / rate_hz of simulated time apart, though the robot waited seconds at the gate.
    assert np.diff(stamps).tolist() == [250_000_000] * 6
    assert node.gate_timeouts == 0


@pytest.mark.ros
def test_drifting_odometry_follows_the_drift_model_and_the_camera_stays_true(ros, reference):
    from mowm_ros.data.drift import DriftConfig, drift_trajectory
    from mowm_ros.nodes.sim_robot import SimRobot

    recorder = CameraRecorder(ros.node('recorder'))
    drift = DriftConfig(yaw_per_metre=0.2, scale=0.1, seed=3)   # large, to be seen in 24 steps
    node = ros.add(SimRobot(context=ros.context, parameter_overrides=[
        Parameter('seed', value=SEED), Parameter('mode', value='explore'),
        Parameter('rate_hz', value=20.0), Parameter('max_steps', value=REFERENCE_FRAMES - 1),
        Parameter('odom_drift_yaw_per_metre', value=drift.yaw_per_metre),
        Parameter('odom_drift_scale', value=drift.scale),
        Parameter('odom_drift_seed', value=drift.seed)]))
    wait_for(lambda: node.finished, what='the route to finish')
    wait_for(lambda: recorder.count() >= 10, what='ten complete frames')
    by_stamp, complete = check_frames(recorder, 64)
    drifted = drift_trajectory(reference.pose, drift)       # the model, on the true route
    extrinsics = extrinsics_matrix(CAMERA_MOUNT)
    errors = []
    for stamp in complete:
        index = next(i for i, rgb in enumerate(reference.rgb) if np.array_equal(
            rgb, conversions.image_to_rgb(by_stamp['rgb'][stamp])))   # the true view
        _, base = conversions.odometry_to_pose(by_stamp['odom'][stamp])
        np.testing.assert_allclose(base @ extrinsics, drifted[index], atol=1e-6)
        errors.append(np.linalg.norm((base @ extrinsics)[:2, 3] - reference.pose[index, :2, 3]))
    assert errors[-1] > 0.05 and max(errors) > min(errors), 'the odometry did not drift'


def twist(linear_x=0.0, angular_z=0.0):
    msg = Twist()
    msg.linear.x, msg.angular.z = float(linear_x), float(angular_z)
    return msg


def odometry_since(recorder, stamp):
    """Return [(stamp, base pose)] of the odometry received with a stamp after ``stamp``."""
    with recorder.lock:
        messages = list(recorder.messages['odom'])
    poses = sorted((conversions.stamp_to_ns(m.header.stamp), m) for m in messages)
    return [(t, conversions.odometry_to_pose(m)[1]) for t, m in poses if t > stamp]


def newest_odometry(recorder):
    return odometry_since(recorder, -1)[-1]


def turned_since(recorder, stamp, yaw):
    """Return the yaw turned since the odometry at ``stamp``."""
    return yaw_turned([base for _, base in odometry_since(recorder, stamp)], yaw)


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

    def drive(command, until, what):
        return publish_until(lambda: publisher.publish(command), until, what)

    # No command: the robot stays at its spawn; odometry is its level pose on the floor.
    wait_for(lambda: recorder.count() >= 4, what='4 frames on every camera topic')
    by_stamp, complete = check_frames(recorder, 32)
    assert len(complete) >= 2
    for stamp in complete:
        _, base = conversions.odometry_to_pose(by_stamp['odom'][stamp])
        np.testing.assert_allclose(base @ mount, reference.pose[0], atol=2e-3)
        assert abs(base[2, 3]) < 2e-3 and abs(base[2, 2] - 1.0) < 1e-6

    # Forward: the base moves along its heading (the spawn faces down a corridor), without
    # turning, at the maze's speed (about 2 m/s of simulated time).
    t0, start = newest_odometry(recorder)

    def ahead():
        return (newest_odometry(recorder)[1][:2, 3] - start[:2, 3]) @ start[:2, 0]
    drive(twist(linear_x=0.5), lambda: ahead() > 1.0, 'the robot to drive 1 m forward')
    assert abs(turned_since(recorder, t0, yaw_of(start))) < 0.05, 'driving forward turned'
    # The twist is the motion since the previous frame over the stamps between them: wall-clock
    # stamps, so its value depends on how fast the machine steps the simulation. Where two
    # received messages are consecutive frames it integrates to their displacement, and a
    # step forward covers a good part of the 0.5 m the maze's speed gives a 0.25 s step.
    with recorder.lock:
        odom = list(recorder.messages['odom'])
    steps = []
    for a, b in zip(odom, odom[1:]):
        (ta, pa), (tb, pb) = conversions.odometry_to_pose(a), conversions.odometry_to_pose(b)
        forward = (geometry.invert_pose(pa) @ pb)[0, 3]
        if abs(b.twist.twist.linear.x * (tb - ta) * 1e-9 - forward) < 1e-3:
            steps.append(forward)
    assert steps and max(steps) > 0.25, f'steps forward (m) where the twist checks: {steps}'

    # Turning left increases the yaw: each step turns about 0.3 rad, so 0.6 rad means turning
    # on the turn command (not a forward command still in flight).
    t1, moved = newest_odometry(recorder)
    drive(twist(angular_z=1.0), lambda: turned_since(recorder, t1, yaw_of(moved)) > 0.6,
          'the robot to turn 0.6 rad to the left')

    # No new command: after cmd_vel_timeout the robot stops and stays where it stopped.
    stale = node.stale_steps
    wait_for(lambda: node.stale_steps >= stale + 4, what='4 steps without a fresh command')
    since = node.get_clock().now().nanoseconds
    wait_for(lambda: len(odometry_since(recorder, since)) >= 3,
             what='3 odometry messages after the robot stopped')
    stopped = odometry_since(recorder, since)[0][1]
    for _, base in odometry_since(recorder, since):
        np.testing.assert_allclose(base, stopped, atol=1e-3)

    # A NaN command is rejected and counted; the robot does not move and keeps publishing.
    drive(twist(linear_x=math.nan), lambda: node.rejected_commands >= 2, '2 rejected commands')
    drive(twist(angular_z=math.inf, linear_x=0.5), lambda: node.rejected_commands >= 3,
          'a third rejected command')
    since = node.get_clock().now().nanoseconds
    wait_for(lambda: len(odometry_since(recorder, since)) >= 3,
             what='3 odometry messages after the rejected commands')
    for _, base in odometry_since(recorder, since):
        np.testing.assert_allclose(base, stopped, atol=1e-3)
    # And it obeys valid commands again.
    drive(twist(linear_x=0.5),
          lambda: np.linalg.norm(newest_odometry(recorder)[1][:2, 3] - stopped[:2, 3]) > 0.2,
          'the robot to move 0.2 m on a valid command after the rejected ones')


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

    node = SimRobot(context=ros.context, parameter_overrides=[Parameter(name, value=value)])
    try:
        with pytest.raises(ValueError, match=name):    # configure fails naming it
            node.start()
    finally:
        node.destroy_node()
