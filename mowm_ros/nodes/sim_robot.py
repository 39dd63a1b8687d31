"""
A simulated robot: a Memory Maze (MuJoCo) robot on the camera, odometry and cmd_vel topics.

Every control period (``rate_hz``) it steps the maze once and publishes ``camera/image_raw``
(rgb8), ``camera/depth/image_raw`` (32FC1 metres, NaN invalid), ``camera/camera_info`` and
``odom`` (the base pose: the camera pose composed with the inverse of ``camera_extrinsics``, as
the episode player does), all with one stamp. With ``mode: cmd_vel`` it drives from
``cmd_vel`` (geometry_msgs/Twist mapped to the maze's discrete actions by thresholds on
``linear.x`` and ``angular.z``; no command for ``cmd_vel_timeout`` seconds means stop); with
``mode: explore`` it follows the data generator's revisiting exploration route for its seed.

The maze's own episode limit is lifted, so with ``max_steps: 0`` the robot runs until the node
stops; after ``max_steps`` steps it stops stepping and publishing (the simulation is kept).

In-process users (the demo) may pass ``step_gate``, a callable: the robot then publishes its
first frame and steps only when it returns true (or after ``GATE_TIMEOUT_S`` without, counted
in ``gate_timeouts``), asking it every ``GATE_POLL_S`` rather than every control period, so it
steps as soon as the consumers are ready (faster than real time on a fast machine), and its
stamps count simulated time as with ``publish_clock`` (the
maze's 0.25 s control period per step, here from the node clock at the first frame), so what
the nodes downstream see no longer depends on how fast the machine runs them. The simulation
itself is ``mowm_ros.data.maze_robot.MazeRobot``; this node only adds ROS.
"""

import math
import threading
import time

from geometry_msgs.msg import Twist
from mowm_ros import geometry
from mowm_ros.data.drift import DriftConfig, OdometryDrift
from mowm_ros.data.maze_env import CONTROL_PERIOD_NS
from mowm_ros.data.maze_robot import MazeRobot, twist_to_action
from mowm_ros.extrinsics import DEFAULT_EXTRINSICS, extrinsics_matrix
from mowm_ros.nodes import conversions
from mowm_ros.nodes.episode_player import camera_publishers
from mowm_ros.nodes.lifecycle import ManagedNode
from mowm_ros.nodes.parameters import check_by, Spec
from mowm_ros.nodes.runtime import run_nodes
import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

MODES = ('cmd_vel', 'explore')
LOG_THROTTLE_S = 5.0
GATE_TIMEOUT_S = 60.0   # a gate shut this long (a lost message, a stuck consumer) is passed
GATE_POLL_S = 0.01      # how often a step gate is asked

# Best effort matches publishers of either reliability; only the newest command matters.
CMD_VEL_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


SPECS = {
    'maze_size': Spec(9, 'Memory Maze size', choices=(9, 11, 13, 15)),
    'seed': Spec(0, 'maze layout, spawn and exploration route', minimum=0),
    'image_size': Spec(64, 'square camera images (pixels)', minimum=8),
    'publish_depth': Spec(True, 'publish camera/depth/image_raw (32FC1 metres, NaN invalid)'),
    'rate_hz': Spec(1e9 / CONTROL_PERIOD_NS, 'steps per second; 4.0 is real time',
                    positive=True),
    'mode': Spec('cmd_vel', 'cmd_vel: drive from cmd_vel; explore: the generator route',
                 choices=MODES),
    'max_steps': Spec(0, 'stop after this many steps; 0: run until the node stops', minimum=0),
    'cmd_vel_timeout': Spec(0.5, 'seconds after which a command means stop', positive=True),
    'forward_threshold': Spec(0.05, 'linear.x (m/s) above this drives forward', minimum=0.0),
    'turn_threshold': Spec(0.1, '|angular.z| (rad/s) above this turns', minimum=0.0),
    'camera_frame': Spec('camera_optical_frame', 'frame_id of the camera messages'),
    'odom_frame': Spec('odom', 'frame_id of odometry'),
    'publish_clock': Spec(False, 'publish /clock: the simulation time (0.25 s per step), which '
                                 'also stamps the messages; use_sim_time nodes follow it'),
    'base_frame': Spec('base_link', 'child_frame_id of odometry'),
    # Wheel-odometry drift (mowm_ros.data.drift): odometry errs, the camera stays the truth.
    'odom_drift_yaw_per_metre': Spec(0.0, 'odometry heading error growing with the distance '
                                          'travelled, rad per metre (0: none)', minimum=0.0),
    'odom_drift_scale': Spec(0.0, 'odometry distance scale error (0.02: 2%; 0: none)',
                             minimum=0.0, maximum=0.5),
    'odom_drift_seed': Spec(0, 'seed that draws the signs and magnitudes of the drift',
                            minimum=0),
    # As in config/sim_robot.yaml: the true mount.
    'camera_extrinsics': Spec(list(DEFAULT_EXTRINSICS), 'camera optical frame in base_link: '
                              'x y z qx qy qz qw', check=check_by(extrinsics_matrix)),
}
PARAMETERS = {name: spec.default for name, spec in SPECS.items()}


class SimRobot(ManagedNode):
    """
    The simulated robot as a managed node: configure builds the maze, activate steps it.

    Deactivated, it stops stepping and publishing and ignores cmd_vel (the simulation is kept);
    cleanup closes the simulation.
    """

    def __init__(self, step_gate=None, **kwargs):
        super().__init__('sim_robot', SPECS, **kwargs)
        self.robot = None
        self.drift = None                 # OdometryDrift when odometry drift is configured
        self.timer = None
        self.lock = threading.Lock()
        self.command = None               # (linear.x, angular.z, receipt ns) of the newest
        self.commands_received = 0
        self.rejected_commands = 0
        self.stale_steps = 0              # steps stopped because the command was too old
        self.frames_published = 0
        self.started = None               # monotonic time of the first frame
        self.finished = False
        self.previous = None              # (base pose, stamp) of the last frame
        self.clock_pub = None
        self.sim_ns = 0                   # simulation time (publish_clock or a step gate), ns
        self.step_gate = step_gate
        self.gate_shut_since = None       # node clock (s) the gate was first found shut
        self.gated_ticks = 0              # times the gate was asked and found shut
        self.gate_timeouts = 0

    def configure(self, params):
        self.mode = params['mode']
        self.max_steps = int(params['max_steps'])
        self.cmd_vel_timeout_ns = int(params['cmd_vel_timeout'] * 1e9)
        self.thresholds = (float(params['forward_threshold']), float(params['turn_threshold']))
        self.camera_frame = params['camera_frame']
        self.odom_frame = params['odom_frame']
        self.base_frame = params['base_frame']
        self.camera_from_base = geometry.invert_pose(
            extrinsics_matrix(params['camera_extrinsics'], 'camera_extrinsics'))
        self.period = 1.0 / float(params['rate_hz'])
        drift = DriftConfig(yaw_per_metre=float(params['odom_drift_yaw_per_metre']),
                            scale=float(params['odom_drift_scale']),
                            seed=int(params['odom_drift_seed']))
        self.drift = (OdometryDrift.from_config(drift) if drift.yaw_per_metre or drift.scale
                      else None)
        try:
            self.robot = MazeRobot(int(params['maze_size']), int(params['seed']),
                                   int(params['image_size']), depth=params['publish_depth'])
        except ImportError as exc:
            raise ValueError(f'Memory Maze is not importable ({exc}); install the "sim" extra '
                             '(pip install -e .[sim])') from exc
        self.rgb_pub, self.depth_pub, self.info_pub, self.odom_pub = \
            [self.keep(publisher) for publisher in camera_publishers(self)]
        if params['publish_clock']:
            self.clock_pub = self.keep(self.create_publisher(Clock, '/clock', 10))
        if self.mode == 'cmd_vel':
            self.make_subscription(Twist, 'cmd_vel', self.on_cmd_vel, CMD_VEL_QOS,
                                   callback_group=MutuallyExclusiveCallbackGroup())
        size = self.robot.image_size
        self.get_logger().info(
            f'Memory Maze {self.robot.maze_size}x{self.robot.maze_size} seed {self.robot.seed}, '
            f'{size}x{size} camera, {params["rate_hz"]:g} Hz, mode {self.mode}'
            + (f', {self.max_steps} steps' if self.max_steps else ''))

    def activate(self):
        if not self.finished:
            period = self.period if self.step_gate is None else GATE_POLL_S
            self.timer = self.make_timer(period, self.tick,
                                         callback_group=MutuallyExclusiveCallbackGroup())

    def deactivate(self):
        self.timer = None
        with self.lock:
            self.command = None           # a command from before must not drive after

    def release(self):
        robot, self.robot = self.robot, None
        if robot is not None:
            robot.close()

    def on_cmd_vel(self, msg):
        values = (msg.linear.x, msg.linear.y, msg.linear.z,
                  msg.angular.x, msg.angular.y, msg.angular.z)
        now = self.robot_now()
        with self.lock:
            if not all(math.isfinite(v) for v in values):
                # A controller emitting NaN must not keep the robot going on its last command.
                self.command = None
                self.rejected_commands += 1
                rejected = self.rejected_commands
            else:
                self.command = (msg.linear.x, msg.angular.z, now)
                self.commands_received += 1
                return
        self.get_logger().warning(
            f'rejected a non-finite cmd_vel {values}; stopping ({rejected} rejected so far)',
            throttle_duration_sec=LOG_THROTTLE_S)

    def next_action(self, now_ns):
        if self.mode == 'explore':
            return self.robot.explore_action()
        with self.lock:
            command = self.command
        if command is None:
            return twist_to_action(0.0, 0.0)
        linear_x, angular_z, received = command
        if now_ns - received > self.cmd_vel_timeout_ns:
            self.stale_steps += 1
            return twist_to_action(0.0, 0.0)
        return twist_to_action(linear_x, angular_z, *self.thresholds)

    @property
    def simulated_time(self):
        """Whether the robot's time is the simulation's (publish_clock or a step gate)."""
        return self.clock_pub is not None or self.step_gate is not None

    def robot_now(self):
        """Return the robot's time, ns: the simulation's when simulated, else the node's."""
        return self.sim_ns if self.simulated_time else self.get_clock().now().nanoseconds

    def gate_open(self):
        """Whether a step gate lets the robot step now (always, without a gate)."""
        if self.step_gate is None or self.step_gate():
            self.gate_shut_since = None
            return True
        now = self.now_s()
        self.gate_shut_since = self.gate_shut_since or now
        if now - self.gate_shut_since < GATE_TIMEOUT_S:
            self.gated_ticks += 1
            return False
        self.gate_timeouts += 1
        self.gate_shut_since = None
        self.get_logger().warning(f'the step gate stayed shut for {GATE_TIMEOUT_S:g} s; '
                                  f'stepping anyway ({self.gate_timeouts} times so far)')
        return True

    def tick(self):
        if self.finished or not self.gate_open():
            return
        if self.simulated_time:               # the step about to be published, then its frame
            if self.frames_published == 0 and self.clock_pub is None:
                # Under a step gate the nodes keep their own clock: start the simulated time
                # at it, so the stamps look like a robot that never had to wait.
                self.sim_ns = self.get_clock().now().nanoseconds - CONTROL_PERIOD_NS
            self.sim_ns += CONTROL_PERIOD_NS
            if self.clock_pub is not None:
                self.clock_pub.publish(Clock(clock=conversions.ns_to_stamp(self.sim_ns)))
        now = self.robot_now()
        if self.frames_published == 0:
            frame = self.robot.frame            # the spawn, before any action
            self.started = time.monotonic()
        else:
            frame = self.robot.step(self.next_action(now))
            if frame.respawned:
                self.get_logger().warning(
                    'the simulation ended (diverged physics or time limit); respawned at the '
                    f'start of the same maze after {self.robot.steps} steps')
        self.publish(frame, now)
        if self.max_steps and self.robot.steps >= self.max_steps:
            self.finished = True
            self.timer.cancel()           # stays active, publishing nothing more
            rate = self.robot.steps / max(time.monotonic() - self.started, 1e-9)
            self.get_logger().info(
                f'stopped after {self.robot.steps} steps (max_steps), {rate:.1f} steps/s')

    def publish(self, frame, stamp):
        frame_id = self.camera_frame
        self.rgb_pub.publish(conversions.rgb_to_image(frame.rgb, frame_id, stamp))
        if frame.depth is not None:
            self.depth_pub.publish(conversions.depth_to_image(frame.depth, frame_id, stamp))
        size = (self.robot.image_size, self.robot.image_size)
        self.info_pub.publish(
            conversions.intrinsics_to_camera_info(frame.K, size, frame_id, stamp))
        self.odom_pub.publish(self.odometry(frame, stamp))
        self.frames_published += 1

    def odometry(self, frame, stamp):
        """
        Return the base's Odometry; its twist is the motion since the last frame's stamp.

        With drift configured the pose is the drifted one (the drift restarts at a respawn).
        """
        camera = frame.pose
        if self.drift is not None:
            if frame.respawned:
                self.drift.reset()
            camera = self.drift(camera)
        base = camera @ self.camera_from_base
        linear, yaw_rate = np.zeros(3), 0.0
        if self.previous is not None and not frame.respawned:
            previous_base, previous_stamp = self.previous
            seconds = (stamp - previous_stamp) * 1e-9
            if seconds > 0:
                motion = geometry.invert_pose(previous_base) @ base
                linear = motion[:3, 3] / seconds
                yaw_rate = np.arctan2(motion[1, 0], motion[0, 0]) / seconds
        self.previous = (base, stamp)
        return conversions.pose_to_odometry(base, stamp, self.odom_frame, self.base_frame,
                                            linear=linear, angular=(0.0, 0.0, yaw_rate))


def main(args=None):
    run_nodes([SimRobot], args=args)


if __name__ == '__main__':
    main()
