"""The Nav2 wiring: the bridge relays and cancels paths, says what it needs without Nav2."""

from pathlib import Path
import subprocess
import sys
import threading

import numpy as np
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_bridge_without_nav2_says_what_it_needs():
    pytest.importorskip('rclpy')
    from mowm_ros.nodes import nav2_bridge
    if nav2_bridge.nav2_available():
        pytest.skip('Nav2 is installed here')
    result = subprocess.run([sys.executable, '-m', 'mowm_ros.nodes.nav2_bridge'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert 'needs Nav2' in result.stderr and 'nav2_simple_commander' in result.stderr


def stand_in_navigator(context, controller):
    """
    Return a stand-in for Nav2's BasicNavigator, spinning itself as BasicNavigator does.

    Nav2 (nav2_simple_commander and its FollowPath action server) has no pip wheels, so it
    cannot exist here; only Nav2 is mocked. Like BasicNavigator.followPath (send_goal_async,
    then rclpy.spin_until_future_complete on its own node), each call sends a request over
    real DDS to ``controller`` (a Trigger service standing in for the controller server) and
    spins its node until the answer arrives. It records which thread called it.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from std_srvs.srv import Trigger

    class StandInNavigator(Node):
        def __init__(self):
            super().__init__('stand_in_navigator', context=context)
            self.client = self.create_client(Trigger, controller)
            self.lock = threading.Lock()
            self.calls = []

        def _request(self, call):
            future = self.client.call_async(Trigger.Request())
            # The test's own context, where BasicNavigator uses the default one.
            executor = SingleThreadedExecutor(context=context)
            rclpy.spin_until_future_complete(self, future, executor=executor, timeout_sec=30.0)
            executor.shutdown()
            assert future.done(), 'the stand-in controller did not answer'
            with self.lock:
                self.calls.append((*call, threading.current_thread().name))

        def followPath(self, path):  # noqa: N802 - BasicNavigator's name
            self._request(('follow', len(path.poses)))

        def cancelTask(self):  # noqa: N802 - BasicNavigator's name
            self._request(('cancel', 0))

        def seen(self):
            with self.lock:
                return [call[:2] for call in self.calls]

        def threads(self):
            with self.lock:
                return {call[2] for call in self.calls}

    return StandInNavigator()


@pytest.mark.ros
def test_bridge_follows_best_paths_and_cancels_followpath_on_an_empty_one(ros):
    from mowm_ros.nodes import conversions
    from mowm_ros.nodes.nav2_bridge import PathRelay
    from mowm_ros.nodes.world_model_node import RELIABLE_1
    from nav_msgs.msg import Path as PathMsg
    from ros_harness import wait_for
    from std_srvs.srv import Trigger

    requests = []

    def answer(request, response):
        requests.append(threading.current_thread().name)
        response.success = True
        return response

    ros.node('controller_server').create_service(Trigger, 'follow_path', answer)
    navigator = stand_in_navigator(ros.context, 'follow_path')   # not spun by the executor
    assert navigator.client.wait_for_service(timeout_sec=10.0)
    bridge = ros.node('mowm_nav2_bridge')
    relay = PathRelay(navigator, bridge.get_logger())
    relay.subscribe(bridge)
    # Published as the world model publishes ~/best_path: reliable, depth 1.
    publisher = ros.node('world_model').create_publisher(PathMsg, 'best_path', RELIABLE_1)
    assert wait_for(lambda: publisher.get_subscription_count() == 1, timeout=10)

    def send(count, stamp):
        poses = [np.eye(4) for _ in range(count)]
        for i, pose in enumerate(poses):
            pose[0, 3] = 0.25 * i
        publisher.publish(conversions.poses_to_path(poses, 'odom', [stamp] * max(count, 1)))

    try:
        send(0, 1)                       # nothing followed yet: an empty path changes nothing
        send(5, 2)
        assert wait_for(lambda: navigator.seen() == [('follow', 5)], timeout=10), \
            navigator.seen()
        send(7, 3)                       # a newer path replaces it
        assert wait_for(lambda: len(navigator.seen()) == 2, timeout=10), navigator.seen()
        send(0, 4)                       # goal cleared (reached or cancelled): FollowPath stops
        assert wait_for(lambda: len(navigator.seen()) == 3, timeout=10), navigator.seen()
        assert navigator.seen() == [('follow', 5), ('follow', 7), ('cancel', 0)]
        send(0, 5)                       # nothing is being followed: nothing to cancel
        send(4, 6)
        assert wait_for(lambda: len(navigator.seen()) == 4, timeout=10), navigator.seen()
        assert navigator.seen()[3:] == [('follow', 4)]
        # Every call ran on the relay's thread (it spun the navigator there), none inside the
        # subscription callback, and each reached the controller over DDS.
        assert navigator.threads() == {'nav2_relay'}, navigator.threads()
        assert len(requests) == 4
    finally:
        relay.stop()
        navigator.destroy_node()


def test_example_nav2_params_use_the_topics_the_world_model_publishes():
    params = yaml.safe_load((REPO_ROOT / 'config' / 'nav2_params.yaml').read_text())
    layers = params['global_costmap']['global_costmap']['ros__parameters']
    assert layers['memory_layer']['map_topic'] == '/world_model/memory/costmap'
    assert layers['memory_layer']['map_subscribe_transient_local'] is True
    assert layers['obstacle_layer']['memory_cloud']['topic'] == '/world_model/memory/cloud'
    assert layers['obstacle_layer']['memory_cloud']['data_type'] == 'PointCloud2'


def test_example_nav2_params_bring_the_world_model_up_under_a_lifecycle_manager():
    from mowm_ros.nodes.world_model_node import WorldModelNode
    from rclpy.lifecycle import LifecycleNode

    params = yaml.safe_load((REPO_ROOT / 'config' / 'nav2_params.yaml').read_text())
    manager = params['lifecycle_manager_mowm']['ros__parameters']
    assert manager['autostart'] is True and 'world_model' in manager['node_names']
    assert manager['bond_timeout'] == 0.0          # rclpy lifecycle nodes create no bond
    # The managed node waits for the manager instead of starting itself.
    assert params['world_model']['ros__parameters']['autostart'] is False
    assert issubclass(WorldModelNode, LifecycleNode)
