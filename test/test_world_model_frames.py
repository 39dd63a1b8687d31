"""
Frames of the world_model node over DDS.

Odometry and plan in another frame are rejected and counted; a snapshot is restored only into
the frame it was built in, and dropped when the first odometry shows the odometry restarted
(the robot at the odometry origin, the snapshot having left it elsewhere).
"""

from mowm_ros.nodes import conversions
from mowm_ros.nodes.world_model_node import RELIABLE_1, WorldModelNode
from mowm_ros.planning.paths import planar_base_pose
from mowm_ros.world_model import Frame
from nav_msgs.msg import Odometry, Path
import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from ros_harness import publish_until
from scene_episodes import maze_episode

pytestmark = [pytest.mark.ros, pytest.mark.slow]

WHERE_IT_LEFT = planar_base_pose(3.0, 2.0, 1.0)


def world_model(ros, snapshot_dir, **overrides):
    values = {'finetune': False, 'extrinsics_from_tf': False, 'snapshot_dir': str(snapshot_dir),
              'snapshot_period_s': 0.0, 'prediction_period_s': 60.0, **overrides}
    return ros.add(WorldModelNode(context=ros.context, parameter_overrides=[
        Parameter(name, value=value) for name, value in values.items()]))


def send_odometry(ros, node, pose, frame='odom', until=None):
    publisher = ros.node(f'odometry_{id(pose)}_{frame}').create_publisher(
        Odometry, 'odom', qos_profile_sensor_data)
    stamp = node.get_clock().now().nanoseconds
    msg = conversions.pose_to_odometry(pose, stamp, frame)
    until = until or (lambda: node.odometry.latest() is not None
                      and node.odometry.latest()[0] == stamp)
    publish_until(lambda: publisher.publish(msg), until, f'odometry in {frame} to arrive')


def remembered_node(ros, tmp_path):
    """Observe a few frames with the robot last at WHERE_IT_LEFT, shut down; return sizes."""
    episode = maze_episode(12, seed=3)
    node = world_model(ros, tmp_path / 'memory')
    for i in range(0, 12, 3):
        node.model.observe(Frame(rgb=episode.rgb[i], depth=episode.depth[i],
                                 pose=episode.pose[i], K=episode.K, stamp=int(episode.stamp[i])))
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


def test_memory_frame_other_than_the_odometry_frame_fails_configure(ros, tmp_path):
    node = WorldModelNode(context=ros.context, parameter_overrides=[
        Parameter('memory_frame', value='map'), Parameter('finetune', value=False)])
    try:
        with pytest.raises(ValueError, match='memory_frame'):
            node.start()
    finally:
        node.destroy_node()
