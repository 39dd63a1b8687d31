"""
The world_model node's lifecycle over real DDS, driven through lifecycle_msgs ChangeState/GetState.

A client node plays the lifecycle manager; an episode player feeds camera and odometry the
whole time. Checked: no prediction before activate, none after deactivate (input arriving
meanwhile is ignored and counted, the memory kept), predictions again after re-activating with
the memory intact, cleanup releasing the model, shutdown saving the snapshot, and a configure
that fails (missing checkpoint) returning FAILURE and succeeding once the checkpoint is there.
"""

import gc
import shutil
import weakref

from mowm_ros.data.episode import save_episode
from mowm_ros.data.maze_env import generate_episode, GenerationConfig
from mowm_ros.memory.store import MemoryStore
from mowm_ros.model import checkpoint
from mowm_ros.nodes.episode_player import EpisodePlayer
from mowm_ros.nodes.world_model_node import WorldModelNode
import pytest
from rclpy.parameter import Parameter
from ros_harness import Inbox, LifecycleClient, wait_for
from sensor_msgs.msg import Image

pytestmark = [pytest.mark.ros, pytest.mark.slow]

PREDICTED = '/world_model/predicted/image'


@pytest.fixture(scope='module')
def episode_path(tmp_path_factory):
    episode, _ = generate_episode(90_002, GenerationConfig(steps=60))
    path = tmp_path_factory.mktemp('episode') / 'held_out.npz'
    save_episode(path, episode)
    return path


def managed_world_model(ros, **overrides):
    values = {'sampler_steps': 1, 'horizon': 1, 'prediction_period_s': 0.3, 'torch_threads': 1,
              'finetune': False, 'extrinsics_from_tf': False, 'snapshot_period_s': 0.0,
              **overrides}
    return ros.add(WorldModelNode(context=ros.context, parameter_overrides=[
        Parameter(name, value=value) for name, value in values.items()]), start=False)


def test_transitions_gate_predictions_and_keep_then_release_the_memory(ros, tmp_path,
                                                                       episode_path):
    node = managed_world_model(ros, snapshot_dir=str(tmp_path / 'memory'))
    inbox = Inbox(ros.node('listener'), [(PREDICTED, Image, 10)])
    manager = LifecycleClient(ros.node('manager'), '/world_model')
    assert manager.state() == 'unconfigured' and node.model is None
    ros.add(EpisodePlayer(context=ros.context, parameter_overrides=[
        Parameter('episode', value=str(episode_path)), Parameter('rate_hz', value=8.0),
        Parameter('loop', value=True)]))

    # Configured, not active: input is ignored (counted), nothing is predicted.
    assert manager.change('configure') and manager.state() == 'inactive'
    assert node.model is not None
    wait_for(lambda: node.inputs_ignored >= 8, what='input ignored while inactive')
    assert node.model.frames_observed == 0 and inbox.get(PREDICTED) == []

    assert manager.change('activate') and manager.state() == 'active'
    wait_for(lambda: len(inbox.get(PREDICTED)) >= 2, timeout=60, what='predictions once active')

    assert manager.change('deactivate') and manager.state() == 'inactive'
    predicted, ignored = len(inbox.get(PREDICTED)), node.inputs_ignored
    kept = (node.model.frames_observed, len(node.model.spatial), len(node.model.episodic))
    assert kept[0] > 0 and kept[1] > 0
    # A second of input (more than three prediction periods) arrives and is ignored.
    wait_for(lambda: node.inputs_ignored >= ignored + 16, what='input ignored after deactivate')
    assert len(inbox.get(PREDICTED)) == predicted, 'a prediction was published while inactive'
    assert (node.model.frames_observed, len(node.model.spatial),
            len(node.model.episodic)) == kept, 'the memory changed while inactive'

    assert manager.change('activate')
    wait_for(lambda: len(inbox.get(PREDICTED)) >= predicted + 2, timeout=60,
             what='predictions after re-activating')
    assert node.model.frames_observed > kept[0] and len(node.model.spatial) >= kept[1]

    # Cleanup releases the model and its memory.
    model = weakref.ref(node.model)
    assert manager.change('deactivate') and manager.change('cleanup')
    assert manager.state() == 'unconfigured' and node.model is None
    gc.collect()
    assert model() is None, 'the model outlived cleanup'
    # Configure again, then shut down: the snapshot is written.
    assert manager.change('configure') and manager.state() == 'inactive'
    model = weakref.ref(node.model)
    assert manager.change('shutdown') and manager.state() == 'finalized'
    gc.collect()
    assert model() is None, 'the model is still referenced after shutdown'
    assert MemoryStore(tmp_path / 'memory').load() is not None, 'no snapshot at shutdown'


def test_failed_configure_returns_failure_and_can_be_retried(ros, tmp_path):
    missing = tmp_path / 'checkpoint'
    node = managed_world_model(ros, checkpoint=str(missing))
    manager = LifecycleClient(ros.node('manager'), '/world_model')
    assert not manager.change('configure'), 'configure succeeded without a checkpoint'
    assert manager.state() == 'unconfigured' and node.model is None
    assert str(missing) in node.failure and 'not found' in node.failure, node.failure
    shutil.copytree(checkpoint.default_checkpoint_dir(), missing)
    assert manager.change('configure') and manager.state() == 'inactive', node.failure
    assert manager.change('activate') and manager.state() == 'active'


def test_sim_robot_and_follower_publish_only_while_active(ros):
    """Configured or deactivated, the robot neither steps nor publishes; the follower is silent."""
    pytest.importorskip('memory_maze')
    from geometry_msgs.msg import Twist
    from mowm_ros.nodes import conversions
    from mowm_ros.nodes.path_follower import PathFollowerNode
    from mowm_ros.nodes.sim_robot import SimRobot
    from mowm_ros.planning.paths import planar_base_pose
    from nav_msgs.msg import Odometry, Path
    from rclpy.qos import qos_profile_sensor_data
    import numpy as np
    from ros_harness import publish_until

    robot = ros.add(SimRobot(context=ros.context, parameter_overrides=[
        Parameter('rate_hz', value=20.0), Parameter('image_size', value=16)]), start=False)
    follower = ros.add(PathFollowerNode(context=ros.context), start=False)
    client = ros.node('manager')
    inbox = Inbox(client, [('camera/image_raw', Image, qos_profile_sensor_data),
                           ('cmd_vel', Twist, 10)])
    robot_manager = LifecycleClient(client, '/sim_robot')
    follower_manager = LifecycleClient(client, '/path_follower')
    cmd_vel = client.create_publisher(Twist, 'cmd_vel', 10)
    path_pub = client.create_publisher(Path, 'path', 1)
    odom_pub = client.create_publisher(Odometry, 'odom', qos_profile_sensor_data)
    straight = np.stack([planar_base_pose(x, 0.0, 0.0) for x in np.linspace(0.0, 3.0, 7)])

    def drive_until(predicate, what):
        publish_until(lambda: cmd_vel.publish(Twist()), predicate, what)

    def feed_follower_until(predicate, what):
        def publish():
            stamp = client.get_clock().now().nanoseconds
            path_pub.publish(conversions.poses_to_path(straight, 'odom', [stamp] * 7))
            odom_pub.publish(conversions.pose_to_odometry(planar_base_pose(0.0, 0.0, 0.0),
                                                          stamp))
        publish_until(publish, predicate, what)

    assert robot_manager.change('configure') and follower_manager.change('configure')
    drive_until(lambda: robot.inputs_ignored >= 3, 'cmd_vel ignored before activate')
    assert robot.frames_published == 0 and inbox.get('camera/image_raw') == []

    assert robot_manager.change('activate')
    wait_for(lambda: len(inbox.get('camera/image_raw')) >= 2, what='frames once active')
    assert robot_manager.change('deactivate') and robot_manager.state() == 'inactive'
    published, received = robot.frames_published, len(inbox.get('camera/image_raw'))
    ignored = robot.inputs_ignored
    drive_until(lambda: robot.inputs_ignored >= ignored + 5, 'cmd_vel ignored after deactivate')
    assert robot.frames_published == published
    assert len(inbox.get('camera/image_raw')) == received

    # The follower: path and odometry ignored while inactive, followed once active.
    feed_follower_until(lambda: follower.inputs_ignored >= 6, 'input ignored by the follower')
    assert follower.commands_published == 0     # (the test itself sent zero Twists)
    assert not any(c.linear.x > 0 for c in inbox.get('cmd_vel'))
    assert follower_manager.change('activate')
    feed_follower_until(lambda: any(c.linear.x > 0 for c in inbox.get('cmd_vel')),
                        'the follower driving along the path once active')
    assert follower_manager.change('deactivate')
    commands, ignored = follower.commands_published, follower.inputs_ignored
    feed_follower_until(lambda: follower.inputs_ignored >= ignored + 6,
                        'input ignored after deactivate')
    assert follower.commands_published == commands

    assert robot_manager.change('cleanup') and follower_manager.change('cleanup')
    assert robot.robot is None and robot_manager.state() == 'unconfigured'


def test_parameters_are_described_with_ranges_and_read_only_flags(ros):
    """What ``ros2 param describe /world_model ...`` shows, asked over DDS before configure."""
    from mowm_ros.nodes.world_model_params import SPECS
    from rcl_interfaces.srv import DescribeParameters

    managed_world_model(ros)
    client = ros.node('describer').create_client(DescribeParameters,
                                                 '/world_model/describe_parameters')
    assert client.wait_for_service(timeout_sec=30.0)
    future = client.call_async(DescribeParameters.Request(names=list(SPECS)))
    wait_for(future.done, what='an answer from describe_parameters')
    described = {d.name: d for d in future.result().descriptors}
    assert set(described) == set(SPECS)
    assert all(d.description for d in described.values())
    horizon, steps = described['horizon'], described['sampler_steps']
    assert not horizon.read_only and horizon.integer_range[0].from_value == 1
    assert steps.read_only                       # read at configure only
    assert described['frame_interval_s'].additional_constraints == '> 0'
    assert described['composition'].additional_constraints == "one of ['contrastive', 'naive']"


def test_deactivate_waits_for_a_timer_callback_already_running(ros):
    """A tick in flight on another executor thread ends before deactivate returns."""
    import threading

    from mowm_ros.nodes.lifecycle import ManagedNode
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

    events = []
    started, release = threading.Event(), threading.Event()

    class Ticking(ManagedNode):
        def __init__(self, **kwargs):
            super().__init__('ticking', {}, **kwargs)

        def activate(self):     # its own group, as sim_robot's: it runs beside the service
            self.make_timer(0.01, self.tick, callback_group=MutuallyExclusiveCallbackGroup())

        def tick(self):
            if not started.is_set():
                started.set()
                assert release.wait(30), 'the test never released the tick'
                events.append('tick done')
            else:
                events.append('tick')

    node = ros.add(Ticking(context=ros.context), start=False)
    manager = LifecycleClient(ros.node('manager'), '/ticking')
    assert manager.change('configure') and manager.change('activate')
    assert started.wait(30), 'the timer never ticked once active'
    deactivating = threading.Thread(target=lambda: events.append(
        'deactivated' if manager.change('deactivate') else 'deactivate failed'))
    deactivating.start()
    wait_for(lambda: not node.active, what='deactivate to begin')
    release.set()
    deactivating.join(30)
    assert not deactivating.is_alive(), 'deactivate never returned'
    # Nothing a timer did follows the transition, and no tick started once it began.
    assert events[-2:] == ['tick done', 'deactivated'], events
