"""Image-goal navigation over DDS: goal image -> best path -> cmd_vel -> the robot moves."""

import math
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from mowm_ros.nodes import conversions
from mowm_ros.nodes.path_follower import check_parameters, PARAMETERS, PathFollowerNode
from mowm_ros.nodes.world_model_node import check_parameter, RELIABLE_1, WorldModelNode
from mowm_ros.planning.paths import base_yaw, planar_base_pose
from nav_msgs.msg import Odometry, Path
import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from ros_harness import Inbox, publish_until, wait_for, yaw_turned
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger
import torch

pytestmark = [pytest.mark.ros]

SEED = 0              # the sim robot spawns in a long corridor, facing along it


def follower_node(ros, **overrides):
    return ros.add(PathFollowerNode(
        context=ros.context, cli_args=['--ros-args', '-r', 'path:=/world_model/best_path'],
        parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()]))


def twist(linear_x=0.0, angular_z=0.0):
    msg = Twist()
    msg.linear.x, msg.angular.z = float(linear_x), float(angular_z)
    return msg


def path_length(poses):
    return float(np.linalg.norm(np.diff(poses[:, :2, 3], axis=0), axis=1).sum())


def distance_to_polyline(point, positions):
    best = math.inf
    for a, b in zip(positions[:-1], positions[1:]):
        length = float(np.dot(b - a, b - a))
        t = 0.0 if length == 0 else np.clip(np.dot(point - a, b - a) / length, 0.0, 1.0)
        best = min(best, float(np.linalg.norm(a + t * (b - a) - point)))
    return best


@pytest.mark.slow
def test_goal_image_to_best_path_to_cmd_vel_moves_the_robot(ros):
    pytest.importorskip('memory_maze')
    from mowm_ros.nodes.sim_robot import SimRobot
    torch.set_num_threads(1)

    inbox = Inbox(ros.node('probe'), [
        ('odom', Odometry, qos_profile_sensor_data),
        ('camera/image_raw', Image, qos_profile_sensor_data),
        ('cmd_vel', Twist, 10),
        ('/world_model/best_path', Path, RELIABLE_1),
        ('/world_model/goal/imagined_view', Image, RELIABLE_1),
        ('/diagnostics', DiagnosticArray, 10)])
    helper = ros.node('helper')
    driver = helper.create_publisher(Twist, 'cmd_vel', 10)
    goal_pub = helper.create_publisher(Image, '/world_model/goal_image', RELIABLE_1)
    ros.add(SimRobot(context=ros.context, parameter_overrides=[
        Parameter('seed', value=SEED), Parameter('rate_hz', value=8.0)]))
    world_model = ros.add(WorldModelNode(context=ros.context, parameter_overrides=[
        Parameter(name, value=value) for name, value in {
            'finetune': False, 'experts': ['short_term', 'spatial'], 'sampler_steps': 1,
            'horizon': 2, 'prediction_period_s': 1.0, 'torch_threads': 1,
            # Every candidate is scored (no time budget, all fit under goal_max_candidates):
            # a random subset may leave out the keyframe where the goal view was taken.
            'goal_experts': ['spatial'], 'goal_sampler_steps': 2, 'goal_candidate_yaws': 2,
            'goal_time_budget_s': 0.0, 'goal_replan_period_s': 3.0,
            # The ball robot rolls on for a few decimetres after the follower stops it.
            'goal_arrive_distance_m': 0.8}.items()]))
    follower = follower_node(ros)               # its defaults are tuned for this robot

    def robot_pose():
        return conversions.odometry_to_pose(inbox.get('odom')[-1])[1]

    # The spawn view (the robot stands still until driven) becomes the goal image.
    assert wait_for(lambda: world_model.model.frames_observed >= 2, timeout=30)
    goal_rgb = conversions.image_to_rgb(inbox.get('camera/image_raw')[-1])
    spawn = robot_pose()

    def odometry_after(arrival):
        return [conversions.odometry_to_pose(m)[1] for m in inbox.get('odom', since=arrival)]

    def drive(command, until, what):
        publish_until(lambda: driver.publish(command), until, what)

    # Look around: down the corridor, then turn back towards the spawn.
    drive(twist(linear_x=0.5),
          lambda: np.linalg.norm(robot_pose()[:2, 3] - spawn[:2, 3]) > 2.5,
          'the robot to drive 2.5 m down the corridor')
    arrival, yaw = time.monotonic(), base_yaw(robot_pose())
    drive(twist(angular_z=1.0), lambda: yaw_turned(odometry_after(arrival), yaw) > 2.5,
          'the robot to turn 2.5 rad')

    def standing_still():
        poses = odometry_after(arrival)[-3:]
        return len(poses) == 3 and all(np.allclose(p, poses[0], atol=1e-3) for p in poses)
    arrival = time.monotonic()
    drive(twist(), standing_still, 'the robot to stand still on a zero command')
    start = robot_pose()
    assert np.linalg.norm(start[:2, 3] - spawn[:2, 3]) > 2.0, 'the robot did not drive away'
    assert follower.commands_published == 0, 'the follower drove without a path'

    goal_sent = time.monotonic()
    goal_pub.publish(conversions.rgb_to_image(goal_rgb, 'camera_optical_frame', 0))
    assert wait_for(lambda: inbox.get('/world_model/best_path'), timeout=90), \
        'no best path within 90 s of the goal'
    first = inbox.get('/world_model/best_path')[0]
    path = conversions.path_to_poses(first)
    assert first.header.frame_id == 'odom' and len(path) >= 2
    assert np.all(np.isfinite(path))
    assert np.linalg.norm(path[0, :2, 3] - start[:2, 3]) < 0.3, 'the path starts elsewhere'
    assert np.linalg.norm(np.diff(path[:, :2, 3], axis=0), axis=1).max() <= 0.5
    assert path_length(path) > 1.0, 'the goal image was taken 3 m away: a path is expected'
    # It leads back to where the goal image was taken (candidate goal poses lie on a 1 m lattice
    # and at the keyframes).
    assert np.linalg.norm(path[-1, :2, 3] - spawn[:2, 3]) < 1.5, (
        f'the path ends at {path[-1, :2, 3]}, the goal view was taken at {spawn[:2, 3]}')
    assert wait_for(lambda: inbox.get('/world_model/goal/imagined_view'), timeout=30)
    view = inbox.get('/world_model/goal/imagined_view')[0]
    assert (view.width, view.height, view.encoding) == (64, 64, 'rgb8')

    # The follower drives the robot along it until the world model sees it arrive.
    end = path[-1, :2, 3]
    # While the goal is active the node's own predictions follow the best path.
    assert world_model.future_base_poses()[1] == 'best_path'
    wait_for(lambda: world_model.goal_outcome == 'reached', timeout=120, what=lambda: (
        f'the goal to be reached: robot at {robot_pose()[:2, 3]}, path end {end}, follower '
        f'{follower.state}'))
    commands = inbox.get('cmd_vel', since=goal_sent)
    assert any(c.linear.x > 0.05 for c in commands), 'the follower never drove forward'
    assert follower.commands_published > 0
    assert wait_for(lambda: not inbox.get('/world_model/best_path')[-1].poses, timeout=30), \
        'no empty best path cleared the goal'
    paths = [conversions.path_to_poses(p) for p in inbox.get('/world_model/best_path')]
    cleared = time.monotonic()
    wait_for(lambda: inbox.get('odom', since=cleared), what='odometry after the goal cleared')
    poses = [conversions.odometry_to_pose(m)[1][:2, 3] for m in inbox.get('odom', goal_sent)]
    distances = [np.linalg.norm(p - end) for p in poses]
    assert distances[-1] < distances[0] - 1.0, 'the robot did not approach the path end'
    assert min(distances) < 0.9, f'the robot came no closer than {min(distances):.2f} m'
    positions = [p[:, :2, 3] for p in paths if len(p) >= 2]
    # The maze's ball robot drifts on its momentum in turns; corridors are 1 m wide.
    straying = max(min(distance_to_polyline(p, q) for q in positions) for p in poses)
    assert straying < 1.2, f'the robot strayed {straying:.2f} m from the best paths'
    # The follower stops once the goal is cleared.
    assert wait_for(lambda: follower.state == 'no path', timeout=30), follower.state
    assert wait_for(lambda: inbox.get('cmd_vel')[-1].linear.x == 0.0, timeout=30)
    assert wait_for(lambda: any(
        s.name == 'mowm_ros: world_model goal' and 'last: reached' in s.message
        and 'planning time (s)' in {v.key for v in s.values}
        for m in inbox.get('/diagnostics') for s in m.status), timeout=30)


def call(node, name, timeout=20.0):
    client = node.create_client(Trigger, name)
    assert client.wait_for_service(timeout_sec=10.0), f'service {name} not available'
    future = client.call_async(Trigger.Request())
    assert wait_for(future.done, timeout=timeout), f'service {name} did not answer'
    return future.result()


def test_malformed_goal_images_are_rejected_and_the_node_keeps_running(ros):
    inbox = Inbox(ros.node('probe'), [('/world_model/best_path', Path, RELIABLE_1)])
    helper = ros.node('helper')
    goal_pub = helper.create_publisher(Image, '/world_model/goal_image', RELIABLE_1)
    node = ros.add(WorldModelNode(context=ros.context, parameter_overrides=[
        Parameter('finetune', value=False), Parameter('torch_threads', value=1)]))
    assert wait_for(lambda: goal_pub.get_subscription_count() > 0)
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    bad_encoding = conversions.rgb_to_image(rgb, 'camera', 0)
    bad_encoding.encoding = 'yuv422'
    short = conversions.rgb_to_image(rgb, 'camera', 0)
    short.data = bytes(short.data[:100])
    empty = conversions.rgb_to_image(rgb, 'camera', 0)
    empty.height = 0
    for count, msg in enumerate((bad_encoding, short, empty), start=1):
        goal_pub.publish(msg)          # one at a time: the goal subscription keeps the newest
        assert wait_for(lambda: node.rejected.get('goal_image', 0) >= count, timeout=30), \
            node.rejected
    assert node.goals_received == 0 and node.goal is None
    assert call(helper, '/world_model/cancel_goal').success is False

    # A good goal (bgr8, not square) is taken; without odometry it waits to be planned.
    goal_pub.publish(conversions.rgb_to_image(rgb, 'camera', 0, encoding='bgr8'))
    assert wait_for(lambda: node.goals_received == 1, timeout=30)
    assert node.goal.image.shape == (64, 64, 3)
    level, message, values = node.goal_status()
    assert message == 'planning' and values['rejected goal images'] == 3
    # The planner is asked again and again, and each time it finds no odometry to plan from.
    done = node.goal_planner.done
    wait_for(lambda: node.goal_planner.done >= done + 2, what='two planning attempts')
    assert node.goal.plan is None and node.goal_planner.failed == 0
    cancelled = call(helper, '/world_model/cancel_goal')
    assert cancelled.success and cancelled.message == 'goal cancelled'
    assert node.goal is None and node.goal_outcome == 'cancelled'
    assert wait_for(lambda: inbox.get('/world_model/best_path'), timeout=30)
    assert len(inbox.get('/world_model/best_path')[-1].poses) == 0


def test_the_follower_node_drives_and_stops_on_stale_bad_or_finished_input(ros):
    inbox = Inbox(ros.node('probe'), [('cmd_vel', Twist, 10)])
    helper = ros.node('helper')
    path_pub = helper.create_publisher(Path, '/world_model/best_path', RELIABLE_1)
    odom_pub = helper.create_publisher(Odometry, 'odom', qos_profile_sensor_data)
    follower = follower_node(ros, rate_hz=20, path_timeout_s=1.5, odom_timeout_s=0.5)
    assert wait_for(lambda: path_pub.get_subscription_count() and
                    odom_pub.get_subscription_count())
    straight = np.stack([planar_base_pose(x, 0.0, 0.0) for x in np.linspace(0, 3, 7)])
    robot = planar_base_pose(0.5, 0.0, 0.0)

    def send_odometry(pose, frame='odom'):
        odom_pub.publish(conversions.pose_to_odometry(pose, time.time_ns(), frame))

    def send_path(poses, frame='odom'):
        path_pub.publish(conversions.poses_to_path(poses, frame, [0] * max(len(poses), 1)))

    def keep_sending(pose, until, timeout=60.0, frame='odom', path=None):
        """Stream odometry (and, like the world model replanning, ``path``) until ``until()``."""
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, \
                f'timed out, follower {follower.state}, {follower.paths_received} paths received'
            send_odometry(pose, frame)
            if path is not None:
                send_path(path)
            time.sleep(0.05)

    def stopped():
        commands = inbox.get('cmd_vel')
        return commands and commands[-1].linear.x == 0.0 and commands[-1].angular.z == 0.0

    # Nothing to follow: silence.
    keep_sending(robot, lambda: follower.odometry is not None)
    ticks = follower.ticks
    keep_sending(robot, lambda: follower.ticks >= ticks + 3)
    assert follower.commands_published == 0 and follower.state == 'no path'
    # A path ahead, republished as the world model does while it plans: it drives forward.
    # (A path sent once would go stale if the machine stalled for path_timeout_s before the
    # next odometry; the staleness step below is the one place a path is sent only once.)
    keep_sending(robot, lambda: any(c.linear.x > 0 for c in inbox.get('cmd_vel')),
                 path=straight)
    assert follower.state == 'following'
    # Non-finite odometry stops the robot at once.
    bad = conversions.pose_to_odometry(robot, time.time_ns())
    bad.pose.pose.position.x = math.nan
    publish_until(lambda: odom_pub.publish(bad), lambda: follower.rejected.get('odometry'),
                  'the non-finite odometry to be rejected')
    wait_for(lambda: follower.state == 'no odometry' and stopped(),
             what='the follower to stop on non-finite odometry')
    # Odometry again: it follows again; then odometry in another frame than the path's.
    keep_sending(robot, lambda: follower.state == 'following', path=straight)
    keep_sending(robot, lambda: 'odometry frame' in follower.state and stopped(), frame='map',
                 path=straight)
    # Odometry stops arriving: after odom_timeout_s the robot stops.
    keep_sending(robot, lambda: follower.state == 'following', path=straight)
    publish_until(lambda: send_path(straight),
                  lambda: follower.state.startswith('no odometry for') and stopped(),
                  'a stop after odometry stopped arriving')
    # A path older than path_timeout_s stops it.
    send_path(straight)
    keep_sending(robot, lambda: follower.state.startswith('path older than'))
    # The stop is published in the period that set the state; it arrives a moment later.
    wait_for(stopped, what='a stop command after the path went stale')
    # An empty path (a cleared goal) stops it; a one-point path is refused.
    keep_sending(robot, lambda: follower.state == 'following', path=straight)
    send_path(straight[:0])
    keep_sending(robot, lambda: follower.state == 'no path' and stopped())
    send_path(straight[:1])
    keep_sending(robot, lambda: follower.rejected.get('path', 0) == 1)
    # At the end of the path: done, stopped, and silent afterwards (a path that arrives after
    # the end is finished at once, without a command).
    keep_sending(planar_base_pose(2.9, 0.0, 0.0),
                 lambda: follower.paths_completed >= 1 and stopped(), path=straight)
    assert wait_for(lambda: follower.stop_periods_left == 0, timeout=30)
    count, ticks = follower.commands_published, follower.ticks
    keep_sending(planar_base_pose(2.9, 0.0, 0.0), lambda: follower.ticks >= ticks + 10)
    assert follower.commands_published == count, 'the follower kept publishing while idle'


@pytest.mark.parametrize('name, value', [
    ('rate_hz', 0.0), ('odom_timeout_s', -1.0), ('path_timeout_s', -0.5),
    ('lookahead_m', 0.0), ('max_speed', math.nan), ('turn_in_place_angle', 7.0),
    ('goal_tolerance_m', 'near')])
def test_bad_follower_parameters_are_refused_naming_them(name, value):
    params = dict(PARAMETERS, **{name: value})
    with pytest.raises(ValueError, match=name):
        check_parameters(params)


@pytest.mark.parametrize('name, value', [
    ('goal_experts', []), ('goal_experts', ['spatial', 'telepathy']),
    ('goal_sampler_steps', 0), ('goal_time_budget_s', -1.0), ('goal_replan_period_s', -2.0),
    ('goal_max_candidates', 0), ('goal_candidate_yaws', 0), ('goal_arrive_distance_m', 0.0),
    ('goal_approach_distance_m', math.inf), ('goal_robot_radius_m', -0.1)])
def test_bad_goal_parameters_are_named(name, value):
    reason = check_parameter(name, value)
    assert reason is not None and name in reason
