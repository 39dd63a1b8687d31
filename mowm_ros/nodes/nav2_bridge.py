"""
``mowm_nav2_bridge``: hand the world model's best path to Nav2's controller (FollowPath).

Where ``nav2_simple_commander`` is importable (a ROS 2 distribution with Nav2), every
``best_path`` (nav_msgs/Path, remap it to ``/world_model/best_path``) is sent to Nav2 through
``BasicNavigator.followPath`` from the relay's own thread (never inside a callback); a newer
path replaces the one being followed, and an empty one (the world model publishes it when the
goal is reached or cancelled) cancels FollowPath, so the robot stops. Without Nav2 the
executable says what it needs and exits with status 1.
"""

import sys

from mowm_ros.nodes.workers import LatestWorker
from nav_msgs.msg import Path
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, ReliabilityPolicy

NAV2_MISSING = ('mowm_nav2_bridge needs Nav2: nav2_simple_commander is not importable. '
                'Install Nav2 (e.g. apt install ros-$ROS_DISTRO-nav2-simple-commander) and '
                'source its setup.bash; see config/nav2_params.yaml for the costmap wiring.')


def nav2_available():
    try:
        import nav2_simple_commander.robot_navigator  # noqa: F401 - lazy: optional Nav2
    except ImportError:
        return False
    return True


class PathRelay:
    """
    Relay best paths to a navigator with ``followPath(path)`` and ``cancelTask()``.

    ``BasicNavigator`` is one; ``relay.subscribe(node)`` listens on ``best_path``. A path with
    poses is followed (replacing the one before); an empty path cancels the path being
    followed, and is ignored when none is. BasicNavigator's calls spin its own node until
    Nav2 answers, so they never run in the subscription callback (where the executor is
    spinning): the callback only queues the path, and the relay's own thread (``nav2_relay``)
    calls the navigator, the newest path first (an older one still waiting is dropped).
    """

    def __init__(self, navigator, logger):
        self.navigator = navigator
        self.logger = logger
        self.following = False
        self.worker = LatestWorker('nav2_relay', self._relay, capacity=1,
                                   on_error=self._failed)

    def subscribe(self, node):
        # Reliable like the world model's publisher: an empty path must not be lost.
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        return node.create_subscription(Path, 'best_path', self, qos)

    def __call__(self, path):
        self.worker.submit(path)

    def _relay(self, path):
        if path.poses:
            self.logger.info(f'following a best path of {len(path.poses)} poses')
            self.navigator.followPath(path)
            self.following = True
        elif self.following:
            self.logger.info('empty best path (goal reached or cancelled): cancelling FollowPath')
            self.navigator.cancelTask()
            self.following = False

    def _failed(self, name, exc):
        self.logger.error(f'Nav2 refused the request: {type(exc).__name__}: {exc}')

    def stop(self):
        self.worker.stop()


def main(args=None):
    if not nav2_available():
        print(NAV2_MISSING, file=sys.stderr)
        sys.exit(1)
    from nav2_simple_commander.robot_navigator import BasicNavigator  # lazy: optional Nav2

    rclpy.init(args=args)
    # Two nodes: the bridge's subscription is spun here; the navigator is spun only by its
    # own calls (BasicNavigator spins itself until Nav2 answers), on the relay's thread.
    navigator = BasicNavigator(node_name='mowm_nav2_navigator')
    node = rclpy.create_node('mowm_nav2_bridge')
    relay = PathRelay(navigator, node.get_logger())
    relay.subscribe(node)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        relay.stop()
        node.destroy_node()
        navigator.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
