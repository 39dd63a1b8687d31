"""
The world model as a ROS 2 node: camera + odometry in, predicted views and memories out.

A thin layer over ``mowm_ros.world_model.WorldModel`` (see the interface table in DESIGN.md).
Callbacks only decode, check and queue; observing and predicting run on worker threads, the
newest prediction request wins. Bad input is logged (rate-limited), counted in
``/diagnostics`` and dropped; what the memories hold is never touched by it.

Image-goal navigation: an image on ``~/goal_image`` becomes the active goal (a newer one
supersedes it). A worker thread plans towards it with ``ImageGoalNavigator`` while the memory
keeps integrating, and again every ``goal_replan_period_s``; each plan is published as
``~/best_path`` (nav_msgs/Path, odometry frame) with the view imagined at its end on
``~/goal/imagined_view``. The goal is cleared, and an empty ``~/best_path`` published (a path
follower stops on it), when the robot arrives or on ``~/cancel_goal``.
"""

from dataclasses import dataclass, replace
import math
import os
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from mowm_ros.data.resize import to_model_frame
from mowm_ros.device import check_device
from mowm_ros.extrinsics import DEFAULT_EXTRINSICS, extrinsics_matrix
from mowm_ros.memory.episodic import EpisodicBufferConfig
from mowm_ros.memory.store import SnapshotError
from mowm_ros.model import checkpoint
from mowm_ros.model.experts import DEFAULT_WEIGHTS, EXPERT_NAMES
from mowm_ros.nodes import conversions
from mowm_ros.nodes.inputs import OdometryBuffer, RateMeter, StampPairer
from mowm_ros.nodes.qos import LATCHED, RELIABLE_1, RELIABLE_2
from mowm_ros.nodes.runtime import run_nodes
from mowm_ros.nodes.workers import LatestWorker
from mowm_ros.planning.agreement import memory_agreement
from mowm_ros.planning.navigator import (ImageGoalNavigator, NavigatorConfig, world_model_imagine,
                                         world_model_keyframes)
from mowm_ros.planning.paths import extrapolate_twist, mosaic, poses_along_path
from mowm_ros.world_model import Frame, spatial_config_for, WorldModel, WorldModelConfig
from nav_msgs.msg import OccupancyGrid, Odometry, Path
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Float32
from std_srvs.srv import Trigger
import torch
from visualization_msgs.msg import Marker, MarkerArray

PARAMETERS = {
    'checkpoint': '', 'device': 'auto', 'sampler_steps': 4, 'horizon': 4,
    'frame_interval_s': 0.5, 'prediction_period_s': 1.0,
    'experts': list(EXPERT_NAMES), 'composition': 'contrastive',
    **{f'weight_{name}': weight for name, weight in DEFAULT_WEIGHTS.items()},
    'finetune': True, 'max_points': 1_000_000, 'voxel_size': 0.0, 'keyframe_capacity': 1000,
    'keyframe_min_translation': 0.3, 'keyframe_min_rotation': 0.35, 'snapshot_dir': '',
    'snapshot_period_s': 60.0, 'odom_frame': 'odom', 'use_depth': True, 'pair_slop_s': 0.02,
    'max_odom_gap_s': 0.5, 'plan_timeout_s': 2.0, 'plan_spacing_m': 0.0,
    'memory_period_s': 2.0, 'cloud_max_points': 200_000, 'costmap_resolution': 0.1,
    'camera_extrinsics': list(DEFAULT_EXTRINSICS), 'base_frame': 'base_link',
    'extrinsics_from_tf': True, 'integration_max_width': 320, 'torch_threads': 0,
    'goal_experts': ['short_term', 'spatial'], 'goal_sampler_steps': 2,
    'goal_time_budget_s': 10.0, 'goal_replan_period_s': 2.0, 'goal_max_candidates': 256,
    'goal_candidate_yaws': 8, 'goal_approach_distance_m': 2.0, 'goal_arrive_distance_m': 0.5,
    'goal_robot_radius_m': 0.3,
}

LOG_THROTTLE_S = 5.0
PARKED_FRAMES = 16     # frames waiting for odometry at their stamp (0.27 s of a 60 Hz camera)
OBSERVE_QUEUE = 32     # frames waiting to be observed: bursts of 0.5 s of a 60 Hz camera
# Input stamped further ahead of the node's clock is rejected: one far-future odometry stamp
# would otherwise make every later (correct) message look as if it went back in time.
MAX_STAMP_AHEAD_S = 10.0
GOAL_CHECK_PERIOD_S = 0.25   # arrival checks and (re)planning requests of the active goal


# Parameters the node reads while it runs; a change of any other one needs a restart.
LIVE_PARAMETERS = ('horizon', 'frame_interval_s', 'plan_timeout_s', 'plan_spacing_m',
                   'cloud_max_points', 'costmap_resolution', 'integration_max_width',
                   'odom_frame')
_AT_LEAST = {'sampler_steps': 1, 'horizon': 1, 'max_points': 1, 'keyframe_capacity': 2,
             'cloud_max_points': 0, 'integration_max_width': 0, 'torch_threads': 0,
             'voxel_size': 0.0, 'keyframe_min_translation': 0.0, 'keyframe_min_rotation': 0.0,
             'snapshot_period_s': 0.0, 'pair_slop_s': 0.0, 'plan_timeout_s': 0.0,
             'plan_spacing_m': 0.0, 'goal_sampler_steps': 1, 'goal_time_budget_s': 0.0,
             'goal_replan_period_s': 0.0, 'goal_max_candidates': 1, 'goal_candidate_yaws': 1,
             'goal_approach_distance_m': 0.0, 'goal_robot_radius_m': 0.0}
_POSITIVE = ('frame_interval_s', 'prediction_period_s', 'memory_period_s', 'max_odom_gap_s',
             'costmap_resolution', 'goal_arrive_distance_m')


def check_parameter(name, value):
    """Return why ``value`` is not valid for parameter ``name``, or None when it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return f'{name} must be finite, got {value}'
    if name in _AT_LEAST and value < _AT_LEAST[name]:
        return f'{name} must be >= {_AT_LEAST[name]}, got {value}'
    if name in _POSITIVE and not value > 0:
        return f'{name} must be > 0, got {value}'
    if name in ('experts', 'goal_experts') and (not value or not set(value) <= set(EXPERT_NAMES)):
        return f'{name} must be a non-empty subset of {list(EXPERT_NAMES)}, got {list(value)}'
    if name == 'composition' and value not in ('contrastive', 'naive'):
        return f"composition must be 'contrastive' or 'naive', got {value!r}"
    if name == 'device':
        try:
            check_device(value)
        except ValueError as exc:
            return str(exc)
    if name == 'camera_extrinsics':
        try:
            extrinsics_matrix(value, name)
        except ValueError as exc:
            return str(exc)
    if name in ('odom_frame', 'base_frame') and not value:
        return f'{name} must not be empty'
    if name == 'snapshot_dir' and value and os.path.exists(os.path.expanduser(value)) \
            and not os.path.isdir(os.path.expanduser(value)):
        return f'snapshot_dir {value!r} exists and is not a directory'
    return None


def experts_from(params, name='experts'):
    """
    Return the experts of parameter ``name`` the node can run.

    Without depth (``use_depth: false``, an RGB-only camera) the spatial memory stays empty,
    so the spatial expert is left out and the node runs short-term + episodic.
    """
    experts = list(params[name])
    return experts if params['use_depth'] else [e for e in experts if e != 'spatial']


def model_config_from(params):
    """Build the WorldModelConfig from node parameters; raise ValueError naming a bad one."""
    directory = params['checkpoint'] or str(checkpoint.default_checkpoint_dir())
    spatial = spatial_config_for(checkpoint.read_config(directory))
    spatial = replace(spatial, max_points=int(params['max_points']))
    if params['voxel_size'] > 0:
        spatial = replace(spatial, voxel_size=float(params['voxel_size']))
    episodic = EpisodicBufferConfig(capacity=int(params['keyframe_capacity']),
                                    min_translation=float(params['keyframe_min_translation']),
                                    min_rotation=float(params['keyframe_min_rotation']))
    return WorldModelConfig(
        checkpoint=directory, device=params['device'],
        sampler_steps=int(params['sampler_steps']), experts=tuple(experts_from(params)),
        composition=params['composition'],
        weights={name: params[f'weight_{name}'] for name in EXPERT_NAMES},
        finetune_on_observe=bool(params['finetune']), spatial=spatial, episodic=episodic,
        torch_threads=int(params['torch_threads']))


def navigator_config_from(params):
    """Build the NavigatorConfig of image-goal planning from node parameters."""
    return NavigatorConfig(
        grid_resolution=float(params['costmap_resolution']),
        robot_radius=float(params['goal_robot_radius_m']),
        candidate_yaws=int(params['goal_candidate_yaws']),
        max_candidates=int(params['goal_max_candidates']),
        approach_distance=float(params['goal_approach_distance_m']),
        arrive_distance=float(params['goal_arrive_distance_m']),
        time_budget_s=float(params['goal_time_budget_s']))


@dataclass
class ActiveGoal:
    """The goal being planned for: its image at model size and the latest plan towards it."""

    number: int
    image: np.ndarray                  # uint8 (S, S, 3), S the model's image size
    received: float                    # monotonic seconds
    plan: object = None                # the latest NavigationPlan
    requested: float = None            # monotonic time of the latest planning request
    plans: int = 0


def reduced_frame(frame, max_width):
    """
    Subsample a frame wider than ``max_width`` pixels by an integer stride, K to match.

    The model only sees 64x64 views and the spatial memory 5 cm voxels; fusing every pixel
    of a 640x480 camera costs four times as much as every second one for little more memory.
    Depth is taken at the sampled pixels (never averaged across edges), colour likewise.
    """
    width = frame.rgb.shape[1]
    if max_width <= 0 or width <= max_width:
        return frame
    stride = -(-width // max_width)
    K = np.array(frame.K, dtype=np.float64)
    K[:2] /= stride
    depth = None if frame.depth is None else np.ascontiguousarray(
        frame.depth[::stride, ::stride])
    return replace(frame, rgb=np.ascontiguousarray(frame.rgb[::stride, ::stride]), depth=depth,
                   K=K)


class WorldModelNode(Node):

    def __init__(self, model=None, **kwargs):
        super().__init__('world_model', **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        self.params = {name: self.get_parameter(name).value for name in PARAMETERS}
        p = self.params
        for name, value in p.items():
            reason = check_parameter(name, value)
            if reason:
                raise ValueError(f'invalid parameter: {reason}')
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if p['torch_threads'] > 0:
            torch.set_num_threads(p['torch_threads'])
        self.base_from_camera = extrinsics_matrix(p['camera_extrinsics'])
        self.tf_buffer = self._tf_buffer() if p['extrinsics_from_tf'] else None
        self.model = model or WorldModel(model_config_from(p))
        # Absolute once: every snapshot goes where the parameter said at start-up, whatever
        # the working directory later; MemoryStore refuses to write outside it.
        self.snapshot_dir = os.path.abspath(os.path.expanduser(p['snapshot_dir'])) \
            if p['snapshot_dir'] else ''
        if self.snapshot_dir:
            snapshot = self.model.load(self.snapshot_dir)
            if snapshot is not None:
                self.get_logger().info(
                    f'restored memory from {self.snapshot_dir}: '
                    f'{len(self.model.spatial)} points, {len(self.model.episodic)} '
                    'keyframes')

        self.odometry = OdometryBuffer(max_gap_s=p['max_odom_gap_s'])
        self.pairer = StampPairer(p['pair_slop_s'])
        self.rates = {name: RateMeter() for name in ('image', 'depth', 'odom')}
        self.rejected = {}
        self.camera = None                 # (K, (width, height)) of the latest camera_info
        self.parked = []                   # frames newer than the newest odometry
        self.camera_frame = 'camera_optical_frame'
        self.latest_twist = (0.0, 0.0)
        self.plan = None                   # ((N, 2) positions, monotonic arrival time)
        self.last_observed_stamp = None
        self.last_prediction_made_at = None   # stamp the newest prediction was made from
        self.predictions_published = 0
        self.depth_skipped = 0             # frames observed without fusing depth (busy)
        self.frames_received = 0           # colour images (paired with depth if used)
        self.last_prediction_source = None
        self.last_agreement = None            # planning.agreement.Agreement of the last
        self.latency_ms = []
        self.goal_lock = threading.Lock()
        self.goal = None                   # the ActiveGoal, or None
        self.goals_received = 0
        self.goal_outcome = 'none'         # how the last goal ended: reached | cancelled
        self.last_goal_plan = None         # the newest NavigationPlan, kept for diagnostics
        self._navigator_goal = None        # goal number the navigator last planned for
        self.navigator = ImageGoalNavigator(
            self._imagine_for_goal, self._occupancy_for_goal, navigator_config_from(p),
            keyframes=lambda: world_model_keyframes(self.model, self.base_from_camera)())

        self.observer = LatestWorker('observe', self._observe, capacity=OBSERVE_QUEUE,
                                     on_error=self._worker_failed)
        self.predictor = LatestWorker('predict', self._predict, capacity=1,
                                      on_error=self._worker_failed)
        self.goal_planner = LatestWorker('plan_goal', self._plan_goal, capacity=1,
                                         on_error=self._worker_failed)

        if not (p['use_depth'] and self._subscribe_with_message_filters()):
            self.create_subscription(Image, 'camera/image_raw', self._on_image,
                                     qos_profile_sensor_data)
            if p['use_depth']:
                self.create_subscription(Image, 'camera/depth/image_raw', self._on_depth,
                                         qos_profile_sensor_data)
        self.create_subscription(CameraInfo, 'camera/camera_info', self._on_camera_info,
                                 qos_profile_sensor_data)
        self.create_subscription(Odometry, 'odom', self._on_odometry, qos_profile_sensor_data)
        self.create_subscription(Path, 'plan', self._on_plan, RELIABLE_1)
        self.create_subscription(Image, '~/goal_image', self._on_goal_image, RELIABLE_1)

        self.image_pub = self.create_publisher(Image, '~/predicted/image', RELIABLE_2)
        self.info_pub = self.create_publisher(CameraInfo, '~/predicted/camera_info', RELIABLE_2)
        self.mosaic_pub = self.create_publisher(Image, '~/predicted/mosaic', RELIABLE_1)
        self.path_pub = self.create_publisher(Path, '~/predicted/path', RELIABLE_1)
        self.agreement_pub = self.create_publisher(Float32, '~/predicted/memory_agreement',
                                                   RELIABLE_1)
        self.cloud_pub = self.create_publisher(PointCloud2, '~/memory/cloud', LATCHED)
        self.keyframes_pub = self.create_publisher(MarkerArray, '~/memory/keyframes',
                                                   RELIABLE_1)
        self.costmap_pub = self.create_publisher(OccupancyGrid, '~/memory/costmap', LATCHED)
        self.best_path_pub = self.create_publisher(Path, '~/best_path', RELIABLE_1)
        self.goal_view_pub = self.create_publisher(Image, '~/goal/imagined_view', RELIABLE_1)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_service(Trigger, '~/reset_memory', self._reset_memory)
        self.create_service(Trigger, '~/save_memory', self._save_memory)
        self.create_service(Trigger, '~/cancel_goal', self._cancel_goal)

        self.create_timer(p['prediction_period_s'], self._request_prediction)
        self.create_timer(p['memory_period_s'], self._publish_memory)
        self.create_timer(1.0, self._publish_diagnostics)
        self.create_timer(GOAL_CHECK_PERIOD_S, self._check_goal)
        if self.snapshot_dir and p['snapshot_period_s'] > 0:
            self.create_timer(p['snapshot_period_s'], self._periodic_snapshot)
        self.get_logger().info(
            f'world model ready: checkpoint {self.model.checkpoint_dir}, device '
            f'{self.model.device}, experts {list(self.model.config.experts)}')

    def _on_set_parameters(self, parameters):
        """Accept valid changes of the live parameters; refuse anything else with the reason."""
        for parameter in parameters:
            if parameter.name not in PARAMETERS:
                continue
            if parameter.name not in LIVE_PARAMETERS:
                return SetParametersResult(
                    successful=False, reason=f'{parameter.name} is read at start-up: restart '
                                             'the node to change it')
            reason = check_parameter(parameter.name, parameter.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        for parameter in parameters:
            if parameter.name in LIVE_PARAMETERS:
                self.params[parameter.name] = parameter.value
        return SetParametersResult(successful=True)

    def _tf_buffer(self):
        """Return a tf2 buffer where tf2_ros is installed (a ROS distribution), else None."""
        try:
            import tf2_ros  # lazy: optional, from a ROS distribution
        except ImportError:
            return None
        buffer = tf2_ros.Buffer()
        self._tf_listener = tf2_ros.TransformListener(buffer, self)
        return buffer

    def _extrinsics_from_tf(self, camera_frame):
        """Replace camera_extrinsics by TF's base_frame <- camera_frame once it is known."""
        try:
            transform = self.tf_buffer.lookup_transform(self.params['base_frame'], camera_frame,
                                                        Time())
        except Exception:  # noqa: B902 - tf2 raises several types; keep the parameter's value
            return
        t, q = transform.transform.translation, transform.transform.rotation
        self.base_from_camera = extrinsics_matrix([t.x, t.y, t.z, q.x, q.y, q.z, q.w])
        self.tf_buffer = None
        self.get_logger().info(f'camera extrinsics from TF: {self.params["base_frame"]} <- '
                               f'{camera_frame}')

    # --- input -----------------------------------------------------------------------
    def _reject(self, reason, detail):
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.get_logger().warning(f'dropped input ({reason}): {detail}',
                                  throttle_duration_sec=LOG_THROTTLE_S)

    def _subscribe_with_message_filters(self):
        """Pair colour and depth with message_filters where it is installed; return whether."""
        try:
            import message_filters  # lazy: optional, from a ROS distribution
        except ImportError:
            return False
        subscribers = [message_filters.Subscriber(self, Image, topic,
                                                  qos_profile=qos_profile_sensor_data)
                       for topic in ('camera/image_raw', 'camera/depth/image_raw')]
        self._synchronizer = message_filters.ApproximateTimeSynchronizer(
            subscribers, queue_size=8, slop=self.params['pair_slop_s'])
        self._synchronizer.registerCallback(self._on_synchronized_pair)
        return True

    def _on_synchronized_pair(self, image_msg, depth_msg):
        now = time.monotonic()
        self.rates['image'].tick(now)
        self.rates['depth'].tick(now)
        self._pair_ready(image_msg, depth_msg, conversions.stamp_to_ns(image_msg.header.stamp))

    def _on_camera_info(self, msg):
        try:
            self.camera = conversions.camera_info_to_intrinsics(msg)
        except conversions.ConversionError as exc:
            self._reject('camera_info', exc)

    def _on_odometry(self, msg):
        self.rates['odom'].tick(time.monotonic())
        try:
            stamp, pose = conversions.odometry_to_pose(msg)
            self._check_stamp(stamp, 'odometry')
            twist = (msg.twist.twist.linear.x, msg.twist.twist.angular.z)
            if not np.all(np.isfinite(twist)):
                raise ValueError(f'odometry twist is not finite: {twist}')
            self.odometry.add(stamp, pose)
            self.latest_twist = twist
        except ValueError as exc:
            self._reject('odometry', exc)
            return
        self._release_parked()

    def _check_stamp(self, stamp, what):
        """Raise ValueError when ``stamp`` lies far ahead of the node's clock (once it runs)."""
        now = self.get_clock().now().nanoseconds
        if now > 0 and stamp > now + int(MAX_STAMP_AHEAD_S * 1e9):
            raise ValueError(f'{what} stamp {stamp} is {(stamp - now) / 1e9:.1f} s ahead of '
                             f'the clock (more than {MAX_STAMP_AHEAD_S} s)')

    def _on_plan(self, msg):
        try:
            poses = conversions.path_to_poses(msg)
        except ValueError as exc:
            self._reject('plan', exc)
            return
        self.plan = (poses[:, :2, 3], time.monotonic()) if len(poses) >= 2 else None

    def _on_image(self, msg):
        self.rates['image'].tick(time.monotonic())
        if not self.params['use_depth']:
            self._pair_ready(msg, None, conversions.stamp_to_ns(msg.header.stamp))
            return
        pair = self.pairer.add_colour(conversions.stamp_to_ns(msg.header.stamp), msg)
        if pair is not None:
            self._pair_ready(*pair)

    def _on_depth(self, msg):
        self.rates['depth'].tick(time.monotonic())
        pair = self.pairer.add_depth(conversions.stamp_to_ns(msg.header.stamp), msg)
        if pair is not None:
            self._pair_ready(*pair)

    def _pair_ready(self, image_msg, depth_msg, stamp):
        self.frames_received += 1
        try:
            self._check_stamp(stamp, 'image')
        except ValueError as exc:
            self._reject('stamp', exc)
            return
        try:
            rgb = conversions.image_to_rgb(image_msg)
            depth = conversions.image_to_depth(depth_msg) if depth_msg is not None else None
        except conversions.ConversionError as exc:
            self._reject('image', exc)
            return
        if self.camera is None:
            self._reject('camera_info', 'no camera_info received yet')
            return
        _, (width, height) = self.camera
        if (width, height) != (rgb.shape[1], rgb.shape[0]):
            self._reject('camera_info', f'camera_info is {width}x{height} but the image is '
                                        f'{rgb.shape[1]}x{rgb.shape[0]}')
            return
        if depth is not None and depth.shape != rgb.shape[:2]:
            self._reject('image', f'depth {depth.shape} does not match colour {rgb.shape[:2]}')
            return
        latest = self.odometry.latest()
        if latest is None or latest[0] < stamp:
            self._park(image_msg, rgb, depth, stamp)     # odometry for this stamp may follow
            return
        self._observe_at_odometry(image_msg, rgb, depth, stamp)

    def _park(self, image_msg, rgb, depth, stamp):
        """Hold a frame until odometry reaches its stamp; the oldest held one gives way."""
        self.parked.append((image_msg, rgb, depth, stamp))
        if len(self.parked) > PARKED_FRAMES:
            _, _, _, old = self.parked.pop(0)
            self._reject('odometry', f'no odometry reached image stamp {old}')

    def _release_parked(self):
        latest = self.odometry.latest()
        while self.parked and latest is not None and self.parked[0][3] <= latest[0]:
            self._observe_at_odometry(*self.parked.pop(0))

    def _observe_at_odometry(self, image_msg, rgb, depth, stamp):
        K, _ = self.camera
        base = self.odometry.pose_at(stamp)
        if base is None:
            self._reject('odometry', f'no odometry within {self.params["max_odom_gap_s"]} s '
                                     f'of image stamp {stamp}')
            return
        if self.last_observed_stamp is not None and stamp <= self.last_observed_stamp:
            self._reject('stamp', f'image stamp {stamp} is not newer than '
                                  f'{self.last_observed_stamp}')
            return
        self.last_observed_stamp = stamp
        self.camera_frame = image_msg.header.frame_id or self.camera_frame
        if self.tf_buffer is not None:
            self._extrinsics_from_tf(self.camera_frame)
        frame = Frame(rgb=rgb, depth=depth, pose=base @ self.base_from_camera, K=K, stamp=stamp)
        self.observer.submit(reduced_frame(frame, self.params['integration_max_width']))

    def _observe(self, frame):
        # A camera faster than the memory: every frame joins the short-term context and may
        # become a keyframe, but while newer frames wait, depth fusion (the costly part) is
        # left to the newest, so the queue never overflows and the newest view is fused.
        if frame.depth is not None and self.observer.pending > 0:
            frame = replace(frame, depth=None)
            self.depth_skipped += 1
        try:
            self.model.observe(frame)
        except ValueError as exc:
            self._reject('frame', exc)

    def _worker_failed(self, name, exc):
        if not self.context.ok():
            return          # shutting down: publishing fails once the context is gone
        self.rejected[f'{name}_error'] = self.rejected.get(f'{name}_error', 0) + 1
        self.get_logger().error(f'{name} failed: {type(exc).__name__}: {exc}',
                                throttle_duration_sec=LOG_THROTTLE_S)

    # --- prediction ------------------------------------------------------------------
    def future_base_poses(self, latest=None):
        """
        Return (base poses, source): along a fresh plan, else the current velocity.

        The poses start from ``latest`` ((stamp, base pose); by default the newest odometry)
        and lie ``frame_interval_s`` apart in time from its stamp on.
        """
        latest = self.odometry.latest() if latest is None else latest
        if latest is None:
            return None, None
        _, pose = latest
        p = self.params
        speed, turn = self.latest_twist
        spacing = p['plan_spacing_m'] or max(abs(speed) * p['frame_interval_s'], 0.05)
        with self.goal_lock:
            best = self.goal.plan if self.goal is not None else None
        if best is not None and len(best.path) >= 2:
            poses = poses_along_path(best.path[:, :2, 3], pose, p['horizon'], spacing)
            if len(poses):
                return poses, 'best_path'
        if self.plan is not None and time.monotonic() - self.plan[1] <= p['plan_timeout_s']:
            poses = poses_along_path(self.plan[0], pose, p['horizon'], spacing)
            if len(poses):
                return poses, 'plan'
        return extrapolate_twist(pose, speed, turn, p['horizon'], p['frame_interval_s']), \
            'velocity'

    def _request_prediction(self):
        if self.model.context_ready and self.odometry.latest() is not None:
            self.predictor.submit(time.monotonic())

    def _predict(self, requested):
        """
        Predict from one moment: the context and memory view, then the newest odometry.

        The rollout sees nothing observed after it starts; the future poses are extrapolated
        from the odometry taken with it, and stamped from the later of that odometry's stamp
        and the newest frame in the context (``~/predicted/path``'s header carries it), so no
        prediction is stamped before information it used.
        """
        start = time.perf_counter()
        state = self.model.rollout_state()
        latest = self.odometry.latest()
        if latest is None:
            return                                  # reset meanwhile
        base_poses, source = self.future_base_poses(latest)
        made_at = max(latest[0], state.stamp)
        result = self.model.imagine(base_poses @ self.base_from_camera, state=state)
        self.latency_ms.append(1000 * (time.perf_counter() - start) / len(base_poses))
        self.latency_ms = self.latency_ms[-50:]
        interval = int(self.params['frame_interval_s'] * 1e9)
        stamps = [made_at + (i + 1) * interval for i in range(len(base_poses))]
        images = result.images[0]
        size = images.shape[1]
        self.image_pub.publish(conversions.rgb_to_image(images[0], self.camera_frame,
                                                        stamps[0]))
        self.info_pub.publish(conversions.intrinsics_to_camera_info(
            result.intrinsics, (size, size), self.camera_frame, stamps[0]))
        self.mosaic_pub.publish(conversions.rgb_to_image(mosaic(images), self.camera_frame,
                                                         stamps[0]))
        path = conversions.poses_to_path(base_poses, self.params['odom_frame'], stamps)
        path.header.stamp = conversions.ns_to_stamp(made_at)
        self.path_pub.publish(path)
        self.predictions_published += 1
        self.last_prediction_made_at = made_at
        self.last_prediction_source = source
        rendered, covered = self.model.render_memory(base_poses @ self.base_from_camera, state)
        self.last_agreement = memory_agreement(images, rendered, covered)
        self.agreement_pub.publish(Float32(data=self.last_agreement.score))

    # --- image-goal navigation ---------------------------------------------------------
    def _imagine_for_goal(self, base_poses):
        p = self.params
        return world_model_imagine(self.model, self.base_from_camera,
                                   experts_from(p, 'goal_experts'),
                                   int(p['goal_sampler_steps']))(base_poses)

    def _occupancy_for_goal(self):
        c = self.navigator.config
        return self.model.spatial.occupancy_grid(
            resolution=self.params['costmap_resolution'], z_min=c.z_min, z_max=c.z_max)

    def _on_goal_image(self, msg):
        try:
            rgb = conversions.image_to_rgb(msg)
        except conversions.ConversionError as exc:
            self._reject('goal_image', exc)
            return
        image = to_model_frame(rgb, self.model.size)
        with self.goal_lock:
            self.goals_received += 1
            self.goal = ActiveGoal(self.goals_received, image, time.monotonic())
            number = self.goal.number
        self.get_logger().info(f'goal {number}: a {rgb.shape[1]}x{rgb.shape[0]} goal image; '
                               'planning')
        self._check_goal()

    def _check_goal(self):
        """Clear the goal once the robot arrived; request a plan when one is due."""
        latest = self.odometry.latest()
        with self.goal_lock:
            goal = self.goal
            if goal is None:
                return
            if goal.plan is not None and latest is not None:
                target = goal.plan.believed_goal if goal.plan.believed_goal is not None \
                    else goal.plan.goal_pose
                distance = float(np.linalg.norm(latest[1][:2, 3] - target[:2, 3]))
                if distance <= self.params['goal_arrive_distance_m']:
                    goal = None
            if goal is not None:
                period = self.params['goal_replan_period_s']
                now = time.monotonic()
                due = goal.requested is None or (period > 0 and now - goal.requested >= period)
                if due and not self.goal_planner.busy and not self.goal_planner.pending:
                    goal.requested = now
                    self.goal_planner.submit(goal.number)
                return
        self._end_goal('reached')

    def _plan_goal(self, number):
        with self.goal_lock:
            goal = self.goal
        if goal is None or goal.number != number:
            return                                     # cancelled or superseded meanwhile
        latest = self.odometry.latest()
        if latest is None or not self.model.context_ready:
            with self.goal_lock:
                goal.requested = None                  # nothing observed yet: ask again
            return
        if self._navigator_goal != number:
            self.navigator.reset()
            self._navigator_goal = number
        stamp, pose = latest
        plan = self.navigator.plan(pose, goal.image)
        with self.goal_lock:
            if self.goal is not goal:
                return
            goal.plan = plan
            goal.plans += 1
            self.last_goal_plan = plan
        frame = self.params['odom_frame']
        self.best_path_pub.publish(conversions.poses_to_path(plan.path, frame,
                                                             [stamp] * len(plan.path)))
        self.goal_view_pub.publish(conversions.rgb_to_image(plan.imagined_goal_view,
                                                            self.camera_frame, stamp))
        self.get_logger().info(
            f'goal {number}: plan {goal.plans} ({plan.stage}) of {len(plan.path)} poses, '
            f'{self._path_length(plan.path):.1f} m, score {plan.score:.4f}, '
            f'reachable {plan.reachable}, {plan.seconds:.1f} s')
        if plan.arrived:
            self._end_goal('reached')

    @staticmethod
    def _path_length(path):
        return float(np.linalg.norm(np.diff(path[:, :2, 3], axis=0), axis=1).sum())

    def _end_goal(self, outcome):
        """Clear the active goal and publish an empty best path; return whether one was set."""
        with self.goal_lock:
            goal, self.goal = self.goal, None
            if goal is None:
                return False
            self.goal_outcome = outcome
        stamp = self.get_clock().now().nanoseconds
        self.best_path_pub.publish(conversions.poses_to_path([], self.params['odom_frame'],
                                                             [stamp]))
        self.get_logger().info(f'goal {goal.number} {outcome} after {goal.plans} plans')
        return True

    def _cancel_goal(self, request, response):
        response.success = self._end_goal('cancelled')
        response.message = 'goal cancelled' if response.success else 'no active goal'
        return response

    def goal_status(self):
        """Return (level, message, values) of the image-goal navigation for /diagnostics."""
        with self.goal_lock:
            goal, plan = self.goal, self.last_goal_plan
        values = {'goals received': self.goals_received,
                  'goal plans': goal.plans if goal is not None else 0,
                  'rejected goal images': self.rejected.get('goal_image', 0)}
        if plan is not None:
            values.update({'planning time (s)': f'{plan.seconds:.2f}',
                           'score': f'{plan.score:.4f}', 'reachable': plan.reachable,
                           'stage': plan.stage, 'path poses': len(plan.path),
                           'path length (m)': f'{self._path_length(plan.path):.2f}'})
        if goal is None:
            message = f'no active goal (last: {self.goal_outcome})'
        elif goal.plan is None:
            message = 'planning'
        else:
            message = f'following a plan ({goal.plan.stage})'
        level = DiagnosticStatus.OK
        if goal is not None and goal.plan is not None and not goal.plan.reachable:
            level = DiagnosticStatus.WARN
            message += ': the goal is not reachable in the memory map'
        return level, message, values

    # --- memory ----------------------------------------------------------------------
    def _publish_memory(self):
        stamp = self.get_clock().now().nanoseconds
        frame = self.params['odom_frame']
        points, colours = self.model.spatial.points_and_colors()
        limit = int(self.params['cloud_max_points'])
        if len(points) > limit > 0:
            keep = np.linspace(0, len(points) - 1, limit).astype(np.int64)
            points, colours = points[keep], colours[keep]
        self.cloud_pub.publish(conversions.points_to_cloud(points, colours, frame, stamp))
        self.keyframes_pub.publish(self._keyframe_markers(frame, stamp))
        grid = self.model.spatial.occupancy_grid(resolution=self.params['costmap_resolution'])
        self.costmap_pub.publish(self._occupancy_message(grid, frame, stamp))

    def _keyframe_markers(self, frame, stamp):
        poses = self.model.episodic.snapshot().pose
        marker = Marker(header=conversions.make_header(frame, stamp), ns='keyframes', id=0,
                        type=Marker.LINE_LIST, action=Marker.ADD)
        marker.scale.x = 0.03
        marker.color.r, marker.color.g, marker.color.b, marker.color.a = 1.0, 0.6, 0.0, 1.0
        marker.pose.orientation.w = 1.0
        for pose in poses:
            origin, forward = pose[:3, 3], pose[:3, 3] + 0.3 * pose[:3, 2]
            marker.points.extend([Point(x=float(origin[0]), y=float(origin[1]),
                                        z=float(origin[2])),
                                  Point(x=float(forward[0]), y=float(forward[1]),
                                        z=float(forward[2]))])
        clear = Marker(header=marker.header, ns='keyframes', action=Marker.DELETEALL)
        return MarkerArray(markers=[clear, marker] if len(poses) else [clear])

    @staticmethod
    def _occupancy_message(grid, frame, stamp):
        msg = OccupancyGrid(header=conversions.make_header(frame, stamp))
        msg.info.resolution = float(grid.resolution)
        msg.info.width, msg.info.height = int(grid.width), int(grid.height)
        msg.info.origin.position.x = float(grid.origin_x)
        msg.info.origin.position.y = float(grid.origin_y)
        msg.info.origin.orientation.w = 1.0
        msg.data = grid.data.astype(np.int8).tolist()
        return msg

    def _reset_memory(self, request, response):
        self.observer.wait_idle(timeout=5.0)
        self._end_goal('cancelled')          # a plan in flight is then discarded
        self.model.reset()
        self.odometry.clear()
        self.last_observed_stamp = None
        response.success, response.message = True, 'memory cleared'
        self._publish_memory()
        return response

    def _save_memory(self, request, response):
        if not self.snapshot_dir:
            response.success = False
            response.message = 'parameter snapshot_dir is empty: nowhere to save'
            return response
        try:
            path = self.save_snapshot()
        except (OSError, SnapshotError, ValueError) as exc:
            response.success, response.message = False, f'save failed: {exc}'
            return response
        response.success, response.message = True, f'saved {path}'
        return response

    def save_snapshot(self):
        self.observer.wait_idle(timeout=5.0)
        return self.model.save(self.snapshot_dir)

    def _periodic_snapshot(self):
        try:
            self.save_snapshot()
        except (OSError, SnapshotError, ValueError) as exc:
            self.get_logger().error(f'periodic snapshot failed: {exc}',
                                    throttle_duration_sec=LOG_THROTTLE_S)

    # --- diagnostics -----------------------------------------------------------------
    def status_values(self):
        now = time.monotonic()
        agreement = self.last_agreement
        values = {f'{name} rate (Hz)': f'{meter.rate(now):.2f}'
                  for name, meter in self.rates.items()}
        values.update({
            'frames received': self.frames_received,
            'frames observed': self.model.frames_observed,
            'memory points': len(self.model.spatial),
            'keyframes': len(self.model.episodic),
            'adapter version': self.model.finetuner.latest().version,
            'finetuning queue': self.model.finetuner.pending_steps,
            'predictions published': self.predictions_published,
            'prediction poses from': self.last_prediction_source or 'n/a',
            'prediction memory agreement': f'{agreement.score:.3f}' if agreement else 'n/a',
            'prediction memory coverage': f'{agreement.coverage:.2f}' if agreement else 'n/a',
            'prediction latency (ms per frame)':
                f'{np.median(self.latency_ms):.0f}' if self.latency_ms else 'n/a',
            'dropped prediction requests': self.predictor.dropped,
            'dropped observations': self.observer.dropped,
            'observation queue': self.observer.pending + int(self.observer.busy),
            'frames observed without depth (busy)': self.depth_skipped,
            'unpaired images': self.pairer.dropped,
        })
        values.update({f'rejected {reason}': count for reason, count in self.rejected.items()})
        return values

    def _publish_diagnostics(self):
        values = self.status_values()
        level, message = DiagnosticStatus.OK, 'running'
        if self.rejected:
            level, message = DiagnosticStatus.WARN, 'some input was rejected (see values)'
        if self.model.frames_observed == 0:
            level, message = DiagnosticStatus.WARN, 'no frame observed yet'
        status = DiagnosticStatus(level=level, name='mowm_ros: world_model', message=message,
                                  hardware_id='mowm_ros')
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        level, message, values = self.goal_status()
        goal = DiagnosticStatus(level=level, name='mowm_ros: world_model goal', message=message,
                                hardware_id='mowm_ros')
        goal.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray(status=[status, goal])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)

    def close(self):
        """Stop the workers and save the memory (when a snapshot directory is set)."""
        self.goal_planner.stop()
        self.predictor.stop()
        self.observer.wait_idle(timeout=10.0)
        self.observer.stop()
        if self.snapshot_dir:
            try:
                path = self.model.save(self.snapshot_dir)
                self.get_logger().info(f'memory saved to {path}')
            except (OSError, SnapshotError, ValueError) as exc:
                self.get_logger().error(f'saving memory at shutdown failed: {exc}')
        self.model.close()


def main(args=None):
    run_nodes([WorldModelNode], args=args, num_threads=1)


if __name__ == '__main__':
    main()
