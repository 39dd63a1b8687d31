"""
Input of the world_model node: colour, depth, camera_info and odometry paired into frames.

Callbacks only decode, check and queue: a colour image is paired with its depth (by
message_filters where installed, else ``StampPairer``), held until odometry reaches its stamp,
given the base pose interpolated there and the camera extrinsics (from TF once known), and
queued for the observer thread. Odometry is composed into ``memory_frame`` on arrival (TF's
memory_frame <- odom_frame at its stamp) when the two frames differ; without that transform it
is dropped, counted, and no frame is observed with it. Bad input is logged (rate-limited),
counted in ``rejected`` and dropped; what the memories hold is never touched by it.
"""

from dataclasses import replace

from mowm_ros.extrinsics import extrinsics_matrix
from mowm_ros.nodes import conversions
from mowm_ros.nodes.transforms import TransformError, TransformSource
from mowm_ros.world_model import Frame
import numpy as np
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import Image

LOG_THROTTLE_S = 5.0
PARKED_FRAMES = 16     # frames waiting for odometry at their stamp (0.27 s of a 60 Hz camera)
# Input stamped further ahead of the node's clock is rejected: one far-future odometry stamp
# would otherwise make every later (correct) message look as if it went back in time.
MAX_STAMP_AHEAD_S = 10.0


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


class FrameInputMixin:
    """The world_model node's input callbacks; the node provides the state they fill."""

    def _transform_source(self, p):
        """
        Return TF's ``memory_frame`` <- ``odom_frame`` source, or None when they are one frame.

        Shares the extrinsics' tf2 buffer where there is one; ValueError when TF is missing.
        """
        if p['memory_frame'] == p['odom_frame']:
            return None
        return TransformSource.for_node(self, self.tf_buffer)

    def _to_memory_frame(self, stamp, pose):
        """Return the odometry ``pose`` at ``stamp`` in memory_frame; raise TransformError."""
        if self.transforms is None:
            return pose
        memory, odom = self.params['memory_frame'], self.params['odom_frame']
        try:
            return self.transforms.lookup(memory, odom, stamp) @ pose
        except TransformError as exc:
            raise TransformError(f'odometry at stamp {stamp} not used: no {memory} <- {odom} '
                                 f'transform for it ({self.transforms.backend}): '
                                 f'{exc}') from None

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
        self._filter_subscribers = [
            message_filters.Subscriber(self, Image, topic, qos_profile=qos_profile_sensor_data)
            for topic in ('camera/image_raw', 'camera/depth/image_raw')]
        self._synchronizer = message_filters.ApproximateTimeSynchronizer(
            self._filter_subscribers, queue_size=8, slop=self.params['pair_slop_s'])
        self._synchronizer.registerCallback(self.when_active(self._on_synchronized_pair))
        return True

    def _destroy_synchronizer(self):
        for subscriber in getattr(self, '_filter_subscribers', ()):
            self.destroy_subscription(subscriber.sub)
        self._filter_subscribers = []
        self._synchronizer = None

    def _on_synchronized_pair(self, image_msg, depth_msg):
        now = self.now_s()
        self.rates['image'].tick(now)
        self.rates['depth'].tick(now)
        self._pair_ready(image_msg, depth_msg, conversions.stamp_to_ns(image_msg.header.stamp))

    def _on_camera_info(self, msg):
        try:
            self.camera = conversions.camera_info_to_intrinsics(msg)
        except conversions.ConversionError as exc:
            self._reject('camera_info', exc)

    def _in_frame(self, msg, what, expected):
        """Return whether ``msg`` is in frame ``expected`` (or has none); else reject, count."""
        frame = msg.header.frame_id
        if frame and frame != expected:
            self._reject('wrong_frame', f'{what} in frame {frame!r}, expected {expected!r}')
            return False
        return True

    def _on_odometry(self, msg):
        self.rates['odom'].tick(self.now_s())
        if not self._in_frame(msg, 'odometry', self.params['odom_frame']):
            return
        try:
            stamp, pose = conversions.odometry_to_pose(msg)
            self._check_stamp(stamp, 'odometry')
            twist = (msg.twist.twist.linear.x, msg.twist.twist.angular.z)
            if not np.all(np.isfinite(twist)):
                raise ValueError(f'odometry twist is not finite: {twist}')
            pose = self._to_memory_frame(stamp, pose)
            self.odometry.add(stamp, pose)          # checks the pose
            self.latest_twist = twist
        except TransformError as exc:
            self._reject('no_transform', exc)       # frames wait for odometry, then are dropped
            return
        except ValueError as exc:
            self._reject('odometry', exc)
            return
        self._check_restored_memory(pose)             # before any frame is observed with it
        self._release_parked()

    def _check_stamp(self, stamp, what):
        """Raise ValueError when ``stamp`` lies far ahead of the node's clock (once it runs)."""
        now = self.get_clock().now().nanoseconds
        if now > 0 and stamp > now + int(MAX_STAMP_AHEAD_S * 1e9):
            raise ValueError(f'{what} stamp {stamp} is {(stamp - now) / 1e9:.1f} s ahead of '
                             f'the clock (more than {MAX_STAMP_AHEAD_S} s)')

    def _on_plan(self, msg):
        if not self._in_frame(msg, 'plan', self.params['memory_frame']):
            return
        try:
            poses = conversions.path_to_poses(msg)
        except ValueError as exc:
            self._reject('plan', exc)
            return
        self.plan = (poses[:, :2, 3], self.now_s()) if len(poses) >= 2 else None

    def _on_image(self, msg):
        self.rates['image'].tick(self.now_s())
        if not self.params['use_depth']:
            self._pair_ready(msg, None, conversions.stamp_to_ns(msg.header.stamp))
            return
        pair = self.pairer.add_colour(conversions.stamp_to_ns(msg.header.stamp), msg)
        if pair is not None:
            self._pair_ready(*pair)

    def _on_depth(self, msg):
        self.rates['depth'].tick(self.now_s())
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
            return
        if self.params['predict_on_frame'] and self.observer.pending == 0:
            self._request_prediction()      # from the newest frame, as soon as it is in
