"""
``mowm_nav2_bridge``: hand the world model's best path to Nav2's controller (FollowPath).

Where ``nav2_simple_commander`` is importable (a ROS 2 distribution with Nav2), every
``best_path`` (nav_msgs/Path, remap it to ``/world_model/best_path``) is sent to Nav2 through
``BasicNavigator.followPath``; a newer path replaces the one being followed. Without Nav2 the
executable says what it needs and exits with status 1.
"""

import sys

from nav_msgs.msg import Path
import rclpy

NAV2_MISSING = ('mowm_nav2_bridge needs Nav2: nav2_simple_commander is not importable. '
                'Install Nav2 (e.g. apt install ros-$ROS_DISTRO-nav2-simple-commander) and '
                'source its setup.bash; see config/nav2_params.yaml for the costmap wiring.')


def nav2_available():
    try:
        import nav2_simple_commander.robot_navigator  # noqa: F401 - lazy: optional Nav2
    except ImportError:
        return False
    return True


def main(args=None):
    if not nav2_available():
        print(NAV2_MISSING, file=sys.stderr)
        sys.exit(1)
    from nav2_simple_commander.robot_navigator import BasicNavigator  # lazy: optional Nav2

    rclpy.init(args=args)
    navigator = BasicNavigator(node_name='mowm_nav2_bridge')

    def follow(path):
        if path.poses:
            navigator.get_logger().info(f'following a best path of {len(path.poses)} poses')
            navigator.followPath(path)

    navigator.create_subscription(Path, 'best_path', follow, 1)
    try:
        rclpy.spin(navigator)
    except KeyboardInterrupt:
        pass
    finally:
        navigator.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
