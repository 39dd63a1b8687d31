"""
The Rerun view as a node: logs the camera and the world model's topics to a recording.

Subscribes (relative names follow the node's namespace, like the world model's inputs):
``camera/image_raw``, ``camera/depth/image_raw``, ``camera/camera_info``, ``odom``; under
``world_model`` (a parameter, default ``/world_model``): ``predicted/image``,
``predicted/camera_info``, ``predicted/path``, ``memory/cloud``, ``memory/keyframes``; and
``/diagnostics`` (prediction latency, memory size). What it logs and where is described in
``mowm_ros.viz.recording``. Messages that cannot be decoded are counted and skipped.

``mowm view --port 9090`` (or ``mowm_view``, which also takes ``--ros-args``) serves the
recording to the web viewer on that port and prints its URL; Ctrl-C ends it.
"""

import argparse
import sys
import threading

from diagnostic_msgs.msg import DiagnosticArray
from mowm_ros.extrinsics import DEFAULT_EXTRINSICS, extrinsics_matrix
from mowm_ros.nodes import conversions
from mowm_ros.nodes.qos import LATCHED, RELIABLE_1, RELIABLE_2
from mowm_ros.viz import add_view_arguments, import_rerun
from mowm_ros.viz.recording import CAMERA, PREDICTION, WorldModelRecording
from mowm_ros.viz.serve import serve_recording
from nav_msgs.msg import Odometry, Path
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import Marker, MarkerArray

LOG_THROTTLE_S = 5.0
WORLD_MODEL_STATUS = 'mowm_ros: world_model'
# /diagnostics values of the world model logged as time series: key -> metric name.
DIAGNOSTIC_METRICS = {'prediction latency (ms per frame)': 'latency_ms',
                      'memory points': 'memory_points', 'keyframes': 'keyframes'}


def diagnostic_metrics(msg):
    """{metric: float} of the world model's status in a DiagnosticArray ('n/a' left out)."""
    metrics = {}
    for status in msg.status:
        if status.name != WORLD_MODEL_STATUS:
            continue
        for item in status.values:
            if item.key in DIAGNOSTIC_METRICS:
                try:
                    metrics[DIAGNOSTIC_METRICS[item.key]] = float(item.value)
                except ValueError:
                    pass
    return metrics


def keyframe_arrows(msg):
    """(origins, vectors) of the keyframe markers: LINE_LIST pairs (origin, along the axis)."""
    ends = [(p.x, p.y, p.z) for marker in msg.markers if marker.type == Marker.LINE_LIST
            for p in marker.points]
    ends = np.asarray(ends, dtype=np.float32).reshape(-1, 2, 3)
    return ends[:, 0], ends[:, 1] - ends[:, 0]


class RerunView(Node):
    """Logs what it receives to ``recording`` (a WorldModelRecording), which it closes."""

    def __init__(self, recording, **kwargs):
        super().__init__('rerun_view', **kwargs)
        self.declare_parameter('world_model', '/world_model')
        self.declare_parameter('camera_extrinsics', list(DEFAULT_EXTRINSICS))
        self.recording = recording
        self.base_from_camera = extrinsics_matrix(
            list(self.get_parameter('camera_extrinsics').value), 'camera_extrinsics')
        self.lock = threading.Lock()
        self.latest_stamp = None         # newest camera stamp: memory and metrics go there
        self.scored_until = None         # stamp of the newest scored prediction logged
        self.logged = {}                 # topic -> messages logged
        self.rejected = {}               # topic -> messages that could not be decoded
        world_model = self.get_parameter('world_model').value.rstrip('/')
        sensor = qos_profile_sensor_data
        for topic, kind, callback, qos in (
                ('camera/image_raw', Image, self.on_image, sensor),
                ('camera/depth/image_raw', Image, self.on_depth, sensor),
                ('camera/camera_info', CameraInfo, self.on_camera_info, sensor),
                ('odom', Odometry, self.on_odometry, sensor),
                (f'{world_model}/predicted/image', Image, self.on_prediction, RELIABLE_2),
                (f'{world_model}/predicted/camera_info', CameraInfo,
                 self.on_prediction_info, RELIABLE_2),
                (f'{world_model}/predicted/path', Path, self.on_path, RELIABLE_1),
                (f'{world_model}/memory/cloud', PointCloud2, self.on_cloud, LATCHED),
                (f'{world_model}/memory/keyframes', MarkerArray, self.on_keyframes, RELIABLE_1),
                ('/diagnostics', DiagnosticArray, self.on_diagnostics, 10)):
            self.create_subscription(kind, topic, self._guarded(topic, callback), qos)

    def _guarded(self, topic, callback):
        def guarded(msg):
            try:
                logged = callback(msg)
            except (conversions.ConversionError, ValueError) as exc:
                with self.lock:
                    self.rejected[topic] = self.rejected.get(topic, 0) + 1
                self.get_logger().warning(f'skipped a message on {topic}: {exc}',
                                          throttle_duration_sec=LOG_THROTTLE_S)
                return
            if logged is not False:
                with self.lock:
                    self.logged[topic] = self.logged.get(topic, 0) + 1
        return guarded

    def _newest(self):
        with self.lock:
            return self.latest_stamp

    # --- camera --------------------------------------------------------------------------
    def on_image(self, msg):
        stamp = conversions.stamp_to_ns(msg.header.stamp)
        self.recording.view(CAMERA, stamp, rgb=conversions.image_to_rgb(msg))
        with self.lock:
            self.latest_stamp = max(stamp, self.latest_stamp or stamp)

    def on_depth(self, msg):
        self.recording.view(CAMERA, conversions.stamp_to_ns(msg.header.stamp),
                            depth=conversions.image_to_depth(msg))

    def on_camera_info(self, msg):
        K, size = conversions.camera_info_to_intrinsics(msg)
        self.recording.view(CAMERA, conversions.stamp_to_ns(msg.header.stamp), K=K, size=size)

    def on_odometry(self, msg):
        stamp, pose = conversions.odometry_to_pose(msg)
        self.recording.view(CAMERA, stamp, pose=pose @ self.base_from_camera)

    # --- predictions -----------------------------------------------------------------------
    def on_prediction(self, msg):
        self.recording.view(PREDICTION, conversions.stamp_to_ns(msg.header.stamp),
                            rgb=conversions.image_to_rgb(msg))

    def on_prediction_info(self, msg):
        K, size = conversions.camera_info_to_intrinsics(msg)
        self.recording.view(PREDICTION, conversions.stamp_to_ns(msg.header.stamp), K=K,
                            size=size)

    def on_path(self, msg):
        poses = conversions.path_to_poses(msg)
        if not len(poses):
            return False
        stamp = conversions.stamp_to_ns(msg.poses[0].header.stamp)
        self.recording.view(PREDICTION, stamp, pose=poses[0] @ self.base_from_camera)
        self.recording.predicted_path(stamp, poses[:, :3, 3])

    # --- memory and diagnostics, at the newest camera stamp --------------------------------
    def on_cloud(self, msg):
        stamp = self._newest()
        if stamp is None:
            return False
        points, colours = conversions.cloud_to_points(msg)
        self.recording.memory(stamp, points, colours)

    def on_keyframes(self, msg):
        stamp = self._newest()
        if stamp is None:
            return False
        self.recording.keyframes(stamp, *keyframe_arrows(msg))

    def on_diagnostics(self, msg):
        stamp, metrics = self._newest(), diagnostic_metrics(msg)
        if stamp is None or not metrics:
            return False
        self.recording.scalars(stamp, **metrics)

    def log_scores(self, comparisons):
        """Log scored predictions (the demo monitor's) newer than those already logged."""
        for c in sorted(comparisons, key=lambda c: c['stamp']):
            if self.scored_until is not None and c['stamp'] <= self.scored_until:
                continue
            self.recording.scored(c['stamp'], c['truth'], c['predicted'], psnr=c['psnr'],
                                  psnr_last_frame=c.get('psnr_last_frame'))
            self.scored_until = c['stamp']

    def close(self):
        self.recording.close()


def open_recording(rrd_path=None, port=0, log=print, **options):
    """
    Open a recording to ``rrd_path``, served to the web viewer on ``port`` when one is given.

    Return None after one line through ``log`` when rerun-sdk is not installed; raise
    ValueError when the port cannot be used.
    """
    rr = import_rerun(log)
    if rr is None:
        return None
    if not port:
        return WorldModelRecording(rr, rrd_path=rrd_path, **options)
    recording, url = serve_recording(rr, port, rrd_path=rrd_path, **options)
    log(f'view: the Rerun viewer is at {url} (Ctrl-C ends it)')
    return recording


def run_view(args, ros_args=None):
    """Serve until Ctrl-C; return the exit status (0 also when rerun-sdk is missing)."""
    try:
        recording = open_recording(args.rrd, args.port, cloud_points=args.cloud_points)
    except ValueError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    if recording is None:
        return 0
    context = rclpy.Context()
    rclpy.init(args=ros_args, context=context)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    node = RerunView(recording, context=context)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.close()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    print(f'view: stopped after logging {sum(node.logged.values())} messages', flush=True)
    return 0


def main(args=None):
    argv = sys.argv if args is None else args
    parser = argparse.ArgumentParser(
        prog='mowm_view', description="Log the world model's topics to Rerun and serve the "
        'web viewer on this machine.')
    add_view_arguments(parser)
    return run_view(parser.parse_args(remove_ros_args(argv)[1:]), ros_args=argv)


if __name__ == '__main__':
    sys.exit(main())
