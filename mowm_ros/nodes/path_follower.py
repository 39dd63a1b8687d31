"""
``mowm_path_follower``: drive along a nav_msgs/Path with pure pursuit, publishing ``cmd_vel``.

Subscribes ``path`` (nav_msgs/Path; remap it to ``/world_model/best_path``) and ``odom``
(nav_msgs/Odometry, in the path's frame) and publishes geometry_msgs/Twist on ``cmd_vel`` at
``rate_hz`` from ``mowm_ros.planning.follower.PathFollower``. It stops (a zero Twist, sent for a
few periods, then silence so that other drivers can take over) when it has no path, an empty
path (the world model's "goal cleared"), a path older than ``path_timeout_s``, a path it cannot
use (fewer than two distinct points, NaN, another frame than the odometry's), no odometry
within ``odom_timeout_s``, non-finite odometry, or when it reached the path's end.
"""

import math

from geometry_msgs.msg import Twist
from mowm_ros.nodes import conversions
from mowm_ros.nodes.lifecycle import ManagedNode
from mowm_ros.nodes.parameters import default_of, Spec
from mowm_ros.nodes.runtime import run_nodes
from mowm_ros.planning.follower import path_positions, PathFollower, PathFollowerConfig
from nav_msgs.msg import Odometry, Path
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy

LOG_THROTTLE_S = 5.0
STOP_PERIODS = 3          # zero commands sent after stopping, in case one is lost

PATH_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
CMD_VEL_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)

_CONFIG_FIELDS = ('lookahead_m', 'max_speed', 'max_turn_rate', 'goal_tolerance_m',
                  'heading_gain', 'turn_in_place_angle', 'search_window_m')
_DESCRIPTIONS = {
    'lookahead_m': 'pure pursuit: aim at the path point this far ahead (m)',
    'max_speed': 'm/s', 'max_turn_rate': 'rad/s',
    'goal_tolerance_m': 'done within this distance of the path end (m)',
    'heading_gain': 'rad/s per radian of heading error when turning in place',
    'turn_in_place_angle': 'a larger heading error (rad) turns without driving',
    'search_window_m': 'how far progress along the path may jump in one period (m)'}
SPECS = {
    'rate_hz': Spec(10.0, 'cmd_vel commands per second while following', positive=True),
    'path_timeout_s': Spec(30.0, 'a path older than this stops the robot; 0: never stale',
                           minimum=0.0),
    'odom_timeout_s': Spec(1.0, 'no odometry for this long stops the robot', positive=True),
    **{name: Spec(default_of(PathFollowerConfig, name), _DESCRIPTIONS[name], positive=True,
                  maximum=math.pi if name == 'turn_in_place_angle' else None)
       for name in _CONFIG_FIELDS},
}
PARAMETERS = {name: spec.default for name, spec in SPECS.items()}


def check_parameters(params):
    """Return the PathFollowerConfig of ``params``; raise ValueError naming a bad parameter."""
    for name, value in params.items():
        reason = SPECS[name].problem(name, value)
        if reason:
            raise ValueError(f'parameter {reason}')
    return PathFollowerConfig(**{name: float(params[name]) for name in _CONFIG_FIELDS})


class PathFollowerNode(ManagedNode):
    """
    The path follower as a managed node: commands are sent only while active.

    Deactivating sends one zero command (the robot stops) and forgets the path; path and
    odometry arriving while inactive are ignored.
    """

    def __init__(self, **kwargs):
        super().__init__('path_follower', SPECS, **kwargs)
        self.path = None          # (positions (N, 2), frame id, arrival: node clock, s)
        self.odometry = None      # (base pose 4x4, frame id, arrival: node clock, s)
        self.state = 'no path'
        self.stop_periods_left = 0
        self.commands_published = 0
        self.ticks = 0            # control periods run
        self.paths_received = 0
        self.paths_completed = 0
        self.rejected = {}

    def configure(self, params):
        self.follower = PathFollower(check_parameters(params))
        self.path_timeout_s = float(params['path_timeout_s'])
        self.odom_timeout_s = float(params['odom_timeout_s'])
        self.make_subscription(Path, 'path', self._on_path, PATH_QOS)
        self.make_subscription(Odometry, 'odom', self._on_odometry, qos_profile_sensor_data)
        self.cmd_vel_pub = self.make_publisher(Twist, 'cmd_vel', CMD_VEL_QOS)
        self.get_logger().info(
            f'path follower configured: {float(params["rate_hz"]):g} Hz, lookahead '
            f'{self.follower.config.lookahead_m:g} m, max speed '
            f'{self.follower.config.max_speed:g} m/s')

    def activate(self):
        self.make_timer(1.0 / float(self.params['rate_hz']), self._tick)

    def deactivate(self):
        if self.state == 'following':
            self.cmd_vel_pub.publish(Twist())      # still enabled: the base disables it after
        self.path = self.odometry = None
        self.follower.reset()
        self.state = 'no path'

    def _reject(self, reason, detail):
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.get_logger().warning(f'dropped {reason}: {detail}',
                                  throttle_duration_sec=LOG_THROTTLE_S)

    def _on_path(self, msg):
        self.paths_received += 1
        if not msg.poses:
            self.path = None              # the goal was cleared: stop
            self.follower.reset()
            return
        try:
            positions = path_positions(conversions.path_to_poses(msg))
        except ValueError as exc:
            self.path = None
            self._reject('path', exc)
            return
        self.path = (positions, msg.header.frame_id, self.now_s())

    def _on_odometry(self, msg):
        try:
            _, pose = conversions.odometry_to_pose(msg)
        except ValueError as exc:
            self.odometry = None          # never drive on the last good pose
            self._reject('odometry', exc)
            return
        self.odometry = (pose, msg.header.frame_id, self.now_s())

    def _why_stopped(self, now):
        """Return why the robot must not move now, or None when it may follow the path."""
        if self.path is None:
            return 'no path'
        positions, path_frame, arrived = self.path
        if self.path_timeout_s and now - arrived > self.path_timeout_s:
            return f'path older than {self.path_timeout_s:g} s'
        if self.odometry is None:
            return 'no odometry'
        _, odom_frame, received = self.odometry
        if now - received > self.odom_timeout_s:
            return f'no odometry for {self.odom_timeout_s:g} s'
        if path_frame and odom_frame and path_frame != odom_frame:
            return f'path frame {path_frame!r} is not the odometry frame {odom_frame!r}'
        return None

    def _tick(self):
        self.ticks += 1
        now = self.now_s()
        reason = self._why_stopped(now)
        if reason is None:
            try:
                linear, angular, done = self.follower.command(self.odometry[0], self.path[0])
            except ValueError as exc:
                self._reject('path', exc)
                self.path = None
                reason = 'path unusable'
            else:
                if done:
                    self.paths_completed += 1
                    self.path = None
                    self.follower.reset()
                    reason = 'reached the end of the path'
                else:
                    self._set_state('following')
                    self._publish(linear, angular)
                    return
        if self.state == 'following':
            self.stop_periods_left = STOP_PERIODS
        self._set_state(reason)
        if self.stop_periods_left > 0:
            self.stop_periods_left -= 1
            self._publish(0.0, 0.0)

    def _set_state(self, state):
        if state != self.state and state != 'following' and self.state == 'following':
            self.get_logger().info(f'stopped: {state}')
        self.state = state

    def _publish(self, linear, angular):
        msg = Twist()
        msg.linear.x, msg.angular.z = float(linear), float(angular)
        self.cmd_vel_pub.publish(msg)
        self.commands_published += 1


def main(args=None):
    run_nodes([PathFollowerNode], args=args, num_threads=1)


if __name__ == '__main__':
    main()
