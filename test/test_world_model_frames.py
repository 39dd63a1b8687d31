"""
Frames of the world_model node over DDS.

Odometry and plan in another frame are rejected and counted; a snapshot is restored only into
the frame it was built in, and (memory in odom) dropped when the first odometry shows the
odometry restarted (the robot at the odometry origin, the snapshot having left it elsewhere).
With memory_frame=map the odometry is composed with TF's map <- odom before the memory and the
predictions see it, and a map memory survives an odometry restart.
"""

import importlib.util

from mowm_ros.nodes import conversions
from mowm_ros.nodes.transforms import TF_QOS, TransformError, TransformSource
from mowm_ros.nodes.world_model_node import RELIABLE_1, WorldModelNode
from mowm_ros.planning.paths import planar_base_pose
from mowm_ros.world_model import Frame
from nav_msgs.msg import Odometry, Path
import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from ros_harness import Inbox, publish_until, wait_for
from scene_episodes import maze_episode
from sensor_msgs.msg import CameraInfo, Image
from tf_fixtures import tf_message, TFMessage, transform_stamped

pytestmark = [pytest.mark.ros, pytest.mark.slow]

WHERE_IT_LEFT = planar_base_pose(3.0, 2.0, 1.0)
MAP_ODOM_1 = planar_base_pose(2.0, -1.0, 0.7)
MAP_ODOM_2 = planar_base_pose(-1.5, 4.0, -2.0)
TF_IMPORTABLE = TFMessage is not None or importlib.util.find_spec('tf2_ros') is not None


class FedTransformsNode(WorldModelNode):
    """
    The node with the TFMessages its /tf subscription would take handed to it by the test.

    Mocked because it cannot exist here: tf2_msgs (the /tf message type) is not in the
    pip-only ROS wheels, so nothing can publish /tf. Where tf2_msgs or tf2_ros is installed
    the tests use the real node and publish on /tf.
    """

    def _transform_source(self, p):
        return TransformSource(logger=self.get_logger())


def world_model(ros, snapshot_dir, **overrides):
    values = {'finetune': False, 'extrinsics_from_tf': False, 'snapshot_dir': str(snapshot_dir),
              'snapshot_period_s': 0.0, 'prediction_period_s': 60.0, **overrides}
    fed = values.get('memory_frame', 'odom') != 'odom' and not TF_IMPORTABLE
    return ros.add((FedTransformsNode if fed else WorldModelNode)(
        context=ros.context, parameter_overrides=[
            Parameter(name, value=value) for name, value in values.items()]))


def send_transform(ros, node, map_from_odom, stamp):
    """Give ``node`` TF map <- odom at ``stamp``: on /tf, or (no tf2_msgs) to its source."""
    msg = tf_message(transform_stamped('map', 'odom', map_from_odom, stamp))
    if isinstance(node, FedTransformsNode):
        node.transforms.add(msg)
        return

    def known():
        try:
            return np.allclose(node.transforms.lookup('map', 'odom', stamp), map_from_odom)
        except TransformError:
            return False
    publisher = ros.node(f'tf_{stamp}').create_publisher(TFMessage, '/tf', TF_QOS)
    publish_until(lambda: publisher.publish(msg), known, 'map <- odom to reach the node')


def send_odometry(ros, node, pose, frame='odom', until=None):
    publisher = ros.node(f'odometry_{id(pose)}_{frame}').create_publisher(
        Odometry, 'odom', qos_profile_sensor_data)
    stamp = node.get_clock().now().nanoseconds
    msg = conversions.pose_to_odometry(pose, stamp, frame)
    until = until or (lambda: node.odometry.latest() is not None
                      and node.odometry.latest()[0] == stamp)
    publish_until(lambda: publisher.publish(msg), until, f'odometry in {frame} to arrive')


def observe_a_few_frames(node):
    episode = maze_episode(12, seed=3)
    for i in range(0, 12, 3):
        node.model.observe(Frame(rgb=episode.rgb[i], depth=episode.depth[i],
                                 pose=episode.pose[i], K=episode.K, stamp=int(episode.stamp[i])))
    return episode


def remembered_node(ros, tmp_path, **overrides):
    """Observe a few frames with the robot last at WHERE_IT_LEFT, shut down; return sizes."""
    node = world_model(ros, tmp_path / 'memory', **overrides)
    observe_a_few_frames(node)
    if node.transforms is not None:
        send_transform(ros, node, np.eye(4), node.get_clock().now().nanoseconds)
    send_odometry(ros, node, WHERE_IT_LEFT)
    remembered = (len(node.model.spatial), len(node.model.episodic))
    assert remembered[0] > 0 and remembered[1] > 0
    node.close()                                  # shutdown saves, with the robot's pose
    return remembered


def test_restored_memory_is_kept_where_the_robot_left_off(ros, tmp_path):
    remembered = remembered_node(ros, tmp_path)
    node = world_model(ros, tmp_path / 'memory')
    assert (len(node.model.spatial), len(node.model.episodic)) == remembered
    send_odometry(ros, node, WHERE_IT_LEFT @ planar_base_pose(0.2, 0.0, 0.1))
    assert (len(node.model.spatial), len(node.model.episodic)) == remembered
    assert 'snapshot' not in node.rejected


def test_restored_memory_is_kept_when_only_the_node_restarted(ros, tmp_path):
    """The odometry kept running while the node was down: the robot is elsewhere, aligned."""
    remembered = remembered_node(ros, tmp_path)
    node = world_model(ros, tmp_path / 'memory')
    send_odometry(ros, node, planar_base_pose(-4.0, 1.0, 2.5))
    assert (len(node.model.spatial), len(node.model.episodic)) == remembered


def test_restored_memory_is_dropped_when_the_odometry_restarted(ros, tmp_path):
    remembered_node(ros, tmp_path)
    node = world_model(ros, tmp_path / 'memory')
    assert len(node.model.spatial) > 0
    send_odometry(ros, node, np.eye(4))           # the odometry restarted at zero
    assert len(node.model.spatial) == 0 and len(node.model.episodic) == 0
    assert node.rejected['snapshot'] == 1


def test_snapshot_of_another_frame_is_not_restored(ros, tmp_path):
    remembered_node(ros, tmp_path)
    node = world_model(ros, tmp_path / 'memory', memory_frame='map', odom_frame='map')
    assert len(node.model.spatial) == 0 and node.rejected['snapshot'] == 1


def test_odometry_and_plan_in_another_frame_are_rejected_and_counted(ros, tmp_path):
    node = world_model(ros, tmp_path / 'memory')

    def wrong(count):
        return lambda: node.rejected.get('wrong_frame', 0) >= count

    send_odometry(ros, node, np.eye(4), frame='map', until=wrong(1))
    assert node.odometry.latest() is None
    plan = ros.node('planner').create_publisher(Path, 'plan', RELIABLE_1)
    poses = np.stack([planar_base_pose(x, 0.0, 0.0) for x in (0.0, 1.0, 2.0)])
    path = conversions.poses_to_path(poses, 'map', [1, 1, 1])
    publish_until(lambda: plan.publish(path), wrong(2), 'a plan in map to be rejected')
    assert node.plan is None
    publish_until(lambda: plan.publish(conversions.poses_to_path(poses, 'odom', [1, 1, 1])),
                  lambda: node.plan is not None, 'a plan in odom to be taken')


def test_map_memory_frame_without_tf_fails_configure_saying_what_to_install(ros, tmp_path):
    if TF_IMPORTABLE:
        pytest.skip('tf2_msgs or tf2_ros is installed here: the node has TF')
    node = WorldModelNode(context=ros.context, parameter_overrides=[
        Parameter('memory_frame', value='map'), Parameter('finetune', value=False)])
    try:
        with pytest.raises(ValueError, match='neither tf2_ros nor tf2_msgs'):
            node.start()
    finally:
        node.destroy_node()


def assert_path_at(path, pose):
    poses = conversions.path_to_poses(path)
    assert len(poses) == 2 and path.header.frame_id == 'map'
    for predicted in poses:        # no twist: every predicted pose is the robot's pose
        np.testing.assert_allclose(predicted, pose, atol=1e-6)


def test_odometry_is_composed_into_map_and_predicted_paths_are_in_it(ros, tmp_path):
    inbox = Inbox(ros.node('listener'), [('/world_model/predicted/path', Path, 10)])
    node = world_model(ros, tmp_path / 'memory', memory_frame='map', prediction_period_s=0.2,
                       sampler_steps=1, horizon=2, torch_threads=1)
    observe_a_few_frames(node)
    in_odom = planar_base_pose(0.5, -0.2, 0.3)
    send_transform(ros, node, MAP_ODOM_1, node.get_clock().now().nanoseconds)
    send_odometry(ros, node, in_odom)

    def path_at(pose):
        def found():
            for path in reversed(inbox.get('/world_model/predicted/path')):
                if np.allclose(conversions.path_to_poses(path), pose[None], atol=1e-6):
                    return path
            return None
        return found
    path = wait_for(path_at(MAP_ODOM_1 @ in_odom), what='a predicted path at map <- odom 1')
    assert_path_at(path, MAP_ODOM_1 @ in_odom)
    assert not np.allclose(MAP_ODOM_1 @ in_odom, in_odom)

    # Relocalised: a new map <- odom moves the later poses (the same odometry pose).
    send_transform(ros, node, MAP_ODOM_2, node.get_clock().now().nanoseconds)
    send_odometry(ros, node, in_odom)
    path = wait_for(path_at(MAP_ODOM_2 @ in_odom), what='a predicted path at map <- odom 2')
    assert_path_at(path, MAP_ODOM_2 @ in_odom)
    assert 'no_transform' not in node.rejected


def test_without_the_transform_no_odometry_and_no_frame_is_used(ros, tmp_path):
    node = world_model(ros, tmp_path / 'memory', memory_frame='map', use_depth=False)
    send_odometry(ros, node, np.eye(4),
                  until=lambda: node.rejected.get('no_transform', 0) >= 1)
    assert node.odometry.latest() is None
    with pytest.raises(TransformError, match='no map <- odom transform'):
        node._to_memory_frame(1, np.eye(4))

    # Frames wait for odometry at their stamp, then are dropped, counted: none observed.
    episode = maze_episode(1, seed=3)
    sender = ros.node('camera')
    image = sender.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
    info = sender.create_publisher(CameraInfo, 'camera/camera_info', qos_profile_sensor_data)
    odometry = sender.create_publisher(Odometry, 'odom', qos_profile_sensor_data)
    height, width = episode.rgb.shape[1:3]

    def publish_frame():
        stamp = node.get_clock().now().nanoseconds
        info.publish(conversions.intrinsics_to_camera_info(episode.K, (width, height),
                                                           'camera', stamp))
        image.publish(conversions.rgb_to_image(episode.rgb[0], 'camera', stamp))
        odometry.publish(conversions.pose_to_odometry(np.eye(4), stamp))
    publish_until(publish_frame, lambda: node.rejected.get('odometry', 0) >= 1,
                  'a frame to be dropped for want of odometry in map')
    assert node.model.frames_observed == 0 and node.odometry.latest() is None
    assert node.rejected['no_transform'] >= 2

    # Nav2's plan in map is taken, one in odom is not.
    plan = ros.node('planner').create_publisher(Path, 'plan', RELIABLE_1)
    poses = np.stack([planar_base_pose(x, 0.0, 0.0) for x in (0.0, 1.0, 2.0)])
    publish_until(lambda: plan.publish(conversions.poses_to_path(poses, 'odom', [1, 1, 1])),
                  lambda: node.rejected.get('wrong_frame', 0) >= 1, 'a plan in odom rejected')
    assert node.plan is None
    publish_until(lambda: plan.publish(conversions.poses_to_path(poses, 'map', [1, 1, 1])),
                  lambda: node.plan is not None, 'a plan in map to be taken')


def test_map_memory_is_kept_after_the_odometry_restarted(ros, tmp_path):
    """
    Keep a map memory after the odometry restarted.

    The robot was driven near the map origin while the node was down, and its odometry
    restarted at zero. In odom that looks like a restart and drops the memory (test above);
    in map, which does not move, the memory stays and the localiser places the robot.
    """
    remembered = remembered_node(ros, tmp_path, memory_frame='map')
    node = world_model(ros, tmp_path / 'memory', memory_frame='map')
    assert (len(node.model.spatial), len(node.model.episodic)) == remembered
    near_the_origin = planar_base_pose(0.2, -0.1, 0.1)
    send_transform(ros, node, near_the_origin, node.get_clock().now().nanoseconds)
    send_odometry(ros, node, np.eye(4))
    assert (len(node.model.spatial), len(node.model.episodic)) == remembered
    assert 'snapshot' not in node.rejected
    np.testing.assert_allclose(node.odometry.latest()[1], near_the_origin, atol=1e-9)
