"""
A camera driver stand-in: publish rendered maze RGB-D frames, restamped, at a fixed rate.

Run as a script (``python test/camera_publisher.py --rate 60 --size 640x480 --seconds 12``) on
the domain of ``ROS_DOMAIN_ID``; it waits for a subscriber of ``camera/image_raw``, publishes
colour, depth, camera_info and odometry (same stamp) looping over the rendered frames, and
prints one JSON line with what it sent. Used by test_overload.py and bench/soak.py.
"""

import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mowm_ros import geometry  # noqa: E402
from mowm_ros.extrinsics import CAMERA_MOUNT, extrinsics_matrix  # noqa: E402
from mowm_ros.nodes import conversions  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from scene_episodes import maze_episode  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402


class CameraPublisher:
    """Publish the frames of an episode, restamped with the clock, at ``rate_hz``, looping."""

    def __init__(self, node, episode, rate_hz):
        self.node = node
        self.rate_hz = rate_hz
        self.publishers = {
            'rgb': node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data),
            'depth': node.create_publisher(Image, 'camera/depth/image_raw',
                                           qos_profile_sensor_data),
            'info': node.create_publisher(CameraInfo, 'camera/camera_info',
                                          qos_profile_sensor_data),
            'odom': node.create_publisher(Odometry, 'odom', qos_profile_sensor_data)}
        frame = 'camera_optical_frame'
        self.images = [conversions.rgb_to_image(rgb, frame, 0) for rgb in episode.rgb]
        self.depths = [conversions.depth_to_image(d, frame, 0) for d in episode.depth]
        self.info = conversions.intrinsics_to_camera_info(episode.K, episode.image_size, frame, 0)
        # The world model's default mount turns this odometry back into the camera poses.
        camera_from_base = geometry.invert_pose(extrinsics_matrix(CAMERA_MOUNT))
        self.base_poses = episode.pose @ camera_from_base
        self.speed = float(np.linalg.norm(np.diff(episode.pose[:2, :3, 3], axis=0))) * rate_hz
        self.sent = 0
        self.late = 0
        self.first_stamp = self.last_stamp = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def _run(self):
        period = 1.0 / self.rate_hz
        start = time.monotonic()
        while not self._stop.is_set():
            delay = start + self.sent * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -period:
                self.late += 1
            i = self.sent % len(self.images)
            stamp = self.node.get_clock().now().nanoseconds
            header_stamp = conversions.ns_to_stamp(stamp)
            odom = conversions.pose_to_odometry(self.base_poses[i], stamp,
                                                linear=(self.speed, 0.0, 0.0))
            for msg in (self.images[i], self.depths[i], self.info):
                msg.header.stamp = header_stamp
            self.publishers['odom'].publish(odom)
            self.publishers['info'].publish(self.info)
            self.publishers['rgb'].publish(self.images[i])
            self.publishers['depth'].publish(self.depths[i])
            self.first_stamp = self.first_stamp or stamp
            self.last_stamp = stamp
            self.sent += 1

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)

    def summary(self):
        seconds = (self.last_stamp - self.first_stamp) / 1e9 if self.sent > 1 else 0.0
        return {'sent': self.sent, 'late': self.late, 'seconds': seconds,
                'rate_hz': (self.sent - 1) / seconds if seconds else 0.0}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--size', default='640x480')
    parser.add_argument('--frames', type=int, default=30, help='distinct frames, looped')
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--wait', type=float, default=60.0, help='for a subscriber, seconds')
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split('x'))
    episode = maze_episode(args.frames, size=(width, height), rate_hz=args.rate)
    rclpy.init()
    node = Node('camera_publisher')
    camera = CameraPublisher(node, episode, args.rate)
    deadline = time.monotonic() + args.wait
    while camera.publishers['rgb'].get_subscription_count() == 0:
        if time.monotonic() > deadline:
            print(json.dumps({'error': 'no subscriber'}), flush=True)
            return 1
        time.sleep(0.05)
    print(json.dumps({'started': True}), flush=True)
    camera.start()
    try:
        time.sleep(args.seconds)
    except KeyboardInterrupt:
        pass
    camera.stop()
    print(json.dumps(camera.summary()), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
