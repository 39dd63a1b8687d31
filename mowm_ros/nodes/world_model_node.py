"""
The world model as a ROS 2 node: camera + odometry in, predicted views and memories out.

A thin layer over ``mowm_ros.world_model.WorldModel`` (see the interface table in DESIGN.md).
Callbacks only decode, check and queue (``world_model_inputs``); observing and predicting run
on worker threads, the newest prediction request wins. Image-goal navigation is in
``world_model_goal``, the memory's publication and snapshots in ``world_model_memory``, the
parameters in ``world_model_params``.
"""

import gc
import os
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from mowm_ros.extrinsics import extrinsics_matrix
from mowm_ros.memory.store import SnapshotError
from mowm_ros.nodes import conversions
from mowm_ros.nodes.inputs import OdometryBuffer, RateMeter, StampPairer
from mowm_ros.nodes.lifecycle import ManagedNode
from mowm_ros.nodes.qos import LATCHED, RELIABLE_1, RELIABLE_2
from mowm_ros.nodes.runtime import run_nodes
from mowm_ros.nodes.transforms import tf2_buffer
from mowm_ros.nodes.workers import LatestWorker
from mowm_ros.nodes.world_model_goal import GOAL_CHECK_PERIOD_S, ImageGoalMixin
from mowm_ros.nodes.world_model_inputs import FrameInputMixin, LOG_THROTTLE_S
from mowm_ros.nodes.world_model_memory import MemoryMixin
from mowm_ros.nodes.world_model_params import (check_parameter, model_config_from,
                                               navigator_config_from, PARAMETERS, SPECS)
from mowm_ros.planning.agreement import memory_agreement
from mowm_ros.planning.navigator import ImageGoalNavigator, world_model_keyframes
from mowm_ros.planning.paths import extrapolate_twist, mosaic, poses_along_path
from mowm_ros.world_model import WorldModel
from nav_msgs.msg import OccupancyGrid, Odometry, Path
import numpy as np
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Float32
from std_srvs.srv import Trigger
import torch
from visualization_msgs.msg import MarkerArray

# Re-exported: other modules and tests name them from here.
__all__ = ['LATCHED', 'RELIABLE_1', 'RELIABLE_2', 'WorldModelNode', 'check_parameter',
           'model_config_from', 'PARAMETERS']

OBSERVE_QUEUE = 32     # frames waiting to be observed: bursts of 0.5 s of a 60 Hz camera


class WorldModelNode(FrameInputMixin, ImageGoalMixin, MemoryMixin, ManagedNode):
    """
    The world model as a managed node (``lifecycle.ManagedNode`` says what each transition does).

    configure loads the model (``model`` given here is used for the first configure) and
    restores the snapshot; activate starts predicting; deactivate stops predicting and
    ignores input, keeping the memory; cleanup releases the model and its memory (and the CUDA
    cache); shutdown saves the snapshot first.
    """

    def __init__(self, model=None, **kwargs):
        super().__init__('world_model', SPECS, **kwargs)
        self._given_model = model
        self.model = None
        self.snapshot_dir = ''
        self.rejected = {}
        self.predictions_published = 0
        self.depth_skipped = 0             # frames observed without fusing depth (busy)
        self.frames_received = 0           # colour images (paired with depth if used)
        self.goals_received = 0
        self.goal_outcome = 'none'         # how the last goal ended: reached | cancelled
        self.goal_lock = threading.Lock()
        self.goal = None                   # the ActiveGoal, or None
        self.observer = self.predictor = self.goal_planner = None

    def configure(self, p):
        if p['torch_threads'] > 0:
            torch.set_num_threads(p['torch_threads'])
        self.base_from_camera = extrinsics_matrix(p['camera_extrinsics'])
        self.tf_buffer = tf2_buffer(self) if p['extrinsics_from_tf'] else None
        self.transforms = self._transform_source(p)    # memory_frame <- odom_frame, or None
        model, self._given_model = self._given_model, None
        self.model = model or WorldModel(model_config_from(p))
        # Absolute once: every snapshot goes where the parameter said at configure, whatever
        # the working directory later; MemoryStore refuses to write outside it.
        self.snapshot_dir = os.path.abspath(os.path.expanduser(p['snapshot_dir'])) \
            if p['snapshot_dir'] else ''
        self.odometry = None
        self.restored_anchor = None
        if self.snapshot_dir:
            self.restore_snapshot()

        self.odometry = OdometryBuffer(max_gap_s=p['max_odom_gap_s'])
        self.pairer = StampPairer(p['pair_slop_s'])
        self.rates = {name: RateMeter() for name in ('image', 'depth', 'odom')}
        self.camera = None                 # (K, (width, height)) of the latest camera_info
        self.parked = []                   # frames newer than the newest odometry
        self.camera_frame = 'camera_optical_frame'
        self.latest_twist = (0.0, 0.0)
        self.plan = None                   # ((N, 2) positions, arrival on the node clock)
        self.last_observed_stamp = None
        self.last_prediction_made_at = None   # stamp the newest prediction was made from
        self.last_prediction_source = None
        self.last_agreement = None         # planning.agreement.Agreement of the last
        self.latency_ms = []
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
            self.make_subscription(Image, 'camera/image_raw', self._on_image,
                                   qos_profile_sensor_data)
            if p['use_depth']:
                self.make_subscription(Image, 'camera/depth/image_raw', self._on_depth,
                                       qos_profile_sensor_data)
        self.make_subscription(CameraInfo, 'camera/camera_info', self._on_camera_info,
                               qos_profile_sensor_data)
        self.make_subscription(Odometry, 'odom', self._on_odometry, qos_profile_sensor_data)
        self.make_subscription(Path, 'plan', self._on_plan, RELIABLE_1)
        self.make_subscription(Image, '~/goal_image', self._on_goal_image, RELIABLE_1)

        self.image_pub = self.make_publisher(Image, '~/predicted/image', RELIABLE_2)
        self.info_pub = self.make_publisher(CameraInfo, '~/predicted/camera_info', RELIABLE_2)
        self.mosaic_pub = self.make_publisher(Image, '~/predicted/mosaic', RELIABLE_1)
        self.path_pub = self.make_publisher(Path, '~/predicted/path', RELIABLE_1)
        self.agreement_pub = self.make_publisher(Float32, '~/predicted/memory_agreement',
                                                 RELIABLE_1)
        self.cloud_pub = self.make_publisher(PointCloud2, '~/memory/cloud', LATCHED)
        self.keyframes_pub = self.make_publisher(MarkerArray, '~/memory/keyframes', RELIABLE_1)
        self.costmap_pub = self.make_publisher(OccupancyGrid, '~/memory/costmap', LATCHED)
        self.best_path_pub = self.make_publisher(Path, '~/best_path', RELIABLE_1)
        self.goal_view_pub = self.make_publisher(Image, '~/goal/imagined_view', RELIABLE_1)
        self.diagnostics_pub = self.make_publisher(DiagnosticArray, '/diagnostics', 10)
        self.make_service(Trigger, '~/reset_memory', self._reset_memory)
        self.make_service(Trigger, '~/save_memory', self._save_memory)
        self.make_service(Trigger, '~/cancel_goal', self._cancel_goal)
        self.get_logger().info(
            f'world model configured: checkpoint {self.model.checkpoint_dir}, device '
            f'{self.model.device}, experts {list(self.model.config.experts)}')

    def activate(self):
        p = self.params
        self.make_timer(p['prediction_period_s'], self._request_prediction)
        self.make_timer(p['memory_period_s'], self._publish_memory)
        self.make_timer(1.0, self._publish_diagnostics)
        self.make_timer(GOAL_CHECK_PERIOD_S, self._check_goal)
        if self.snapshot_dir and p['snapshot_period_s'] > 0:
            self.make_timer(p['snapshot_period_s'], self._periodic_snapshot)

    def deactivate(self):
        """Let queued frames into the memory; a prediction in flight is not published."""
        self.observer.wait_idle(timeout=10.0)
        self.predictor.wait_idle(timeout=30.0)

    def finish(self):
        """Save the memory (when a snapshot directory is set)."""
        if self.snapshot_dir and self.model is not None:
            try:
                path = self.save_snapshot()
                self.get_logger().info(f'memory saved to {path}')
            except (OSError, SnapshotError, ValueError) as exc:
                self.get_logger().error(f'saving memory at shutdown failed: {exc}')

    def release(self):
        """Stop the workers, drop the model and its memory, empty the CUDA cache."""
        for worker in (self.goal_planner, self.predictor, self.observer):
            if worker is not None:
                worker.stop()
        self.observer = self.predictor = self.goal_planner = None
        with self.goal_lock:
            self.goal = None
        self.navigator = None
        self._destroy_synchronizer()
        self.tf_buffer = self.transforms = None
        model, self.model = self.model, None
        if model is not None:
            cuda = model.device.type == 'cuda'
            model.close()
            del model
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()

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
        if self.plan is not None and self.now_s() - self.plan[1] <= p['plan_timeout_s']:
            poses = poses_along_path(self.plan[0], pose, p['horizon'], spacing)
            if len(poses):
                return poses, 'plan'
        return extrapolate_twist(pose, speed, turn, p['horizon'], p['frame_interval_s']), \
            'velocity'

    def _request_prediction(self):
        if self.model.context_ready and self.odometry.latest() is not None:
            self.predictor.submit(self.now_s())

    def _predict(self, requested):
        """
        Predict from one moment: the context and memory view, then the newest odometry.

        The rollout sees nothing observed after it starts; the future poses are extrapolated
        from the odometry taken with it, and stamped from the later of that odometry's stamp
        and the newest frame in the context (``~/predicted/path``'s header carries it), so no
        prediction is stamped before information it used.
        """
        if not self.active:
            return                                  # deactivated meanwhile
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
        path = conversions.poses_to_path(base_poses, self.params['memory_frame'], stamps)
        path.header.stamp = conversions.ns_to_stamp(made_at)
        self.path_pub.publish(path)
        self.predictions_published += 1
        self.last_prediction_made_at = made_at
        self.last_prediction_source = source
        rendered, covered = self.model.render_memory(base_poses @ self.base_from_camera, state)
        self.last_agreement = memory_agreement(images, rendered, covered)
        self.agreement_pub.publish(Float32(data=self.last_agreement.score))

    # --- diagnostics -----------------------------------------------------------------
    def status_values(self):
        now = self.now_s()
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
            'finetuning steps': self.model.finetuner.steps_done,
            'finetuning CPU-seconds': f'{self.model.finetuner.cpu_seconds:.1f}',
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
            'memory frame': self.params['memory_frame'] if self.transforms is None else
                f"{self.params['memory_frame']} (odometry through TF, {self.transforms.backend})",
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
                                  hardware_id=self.get_fully_qualified_name())
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        level, message, values = self.goal_status()
        goal = DiagnosticStatus(level=level, name='mowm_ros: world_model goal', message=message,
                                hardware_id=self.get_fully_qualified_name())
        goal.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray(status=[status, goal])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)


def main(args=None):
    run_nodes([WorldModelNode], args=args, num_threads=1)


if __name__ == '__main__':
    main()
