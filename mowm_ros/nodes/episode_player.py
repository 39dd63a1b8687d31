"""
Plays a recorded episode onto the camera and odometry topics, as a robot driver would.

Publishes ``camera/image_raw`` (rgb8), ``camera/depth/image_raw`` (32FC1, when the episode has
depth), ``camera/camera_info`` and ``odom`` (the base pose derived from the camera pose and the
``camera_extrinsics`` parameter), all with the same stamp, at ``rate_hz``.
"""

from mowm_ros import geometry
from mowm_ros.data.episode import load_episode
from mowm_ros.extrinsics import DEFAULT_EXTRINSICS, extrinsics_matrix
from mowm_ros.nodes import conversions
from mowm_ros.nodes.runtime import run_nodes
from nav_msgs.msg import Odometry
import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image


def camera_publishers(node):
    """Create what a robot driver publishes: colour, depth, camera_info, odom (sensor QoS)."""
    return (node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data),
            node.create_publisher(Image, 'camera/depth/image_raw', qos_profile_sensor_data),
            node.create_publisher(CameraInfo, 'camera/camera_info', qos_profile_sensor_data),
            node.create_publisher(Odometry, 'odom', qos_profile_sensor_data))


class EpisodePlayer(Node):

    def __init__(self, **kwargs):
        super().__init__('episode_player', **kwargs)
        self.declare_parameter('episode', '')
        self.declare_parameter('rate_hz', 4.0)
        self.declare_parameter('loop', False)
        self.declare_parameter('camera_frame', 'camera_optical_frame')
        self.declare_parameter('odom_frame', 'odom')
        self.declare_parameter('base_frame', 'base_link')
        # Recorded Memory Maze episodes come from the maze camera: its mount by default.
        self.declare_parameter('camera_extrinsics', list(DEFAULT_EXTRINSICS))

        path = self.get_parameter('episode').value
        if not path:
            raise ValueError('parameter "episode" must name an episode .npz file')
        self.episode = load_episode(path)
        self.camera_frame = self.get_parameter('camera_frame').value
        self.odom_frame = self.get_parameter('odom_frame').value
        self.base_frame = self.get_parameter('base_frame').value
        self.loop = self.get_parameter('loop').value
        camera_from_base = geometry.invert_pose(
            extrinsics_matrix(self.get_parameter('camera_extrinsics').value,
                              'camera_extrinsics'))
        self.base_poses = self.episode.pose @ camera_from_base

        self.rgb_pub, self.depth_pub, self.info_pub, self.odom_pub = camera_publishers(self)

        self.index = 0
        self.frames_published = 0
        self.finished = False
        rate = float(self.get_parameter('rate_hz').value)
        if not rate > 0:
            raise ValueError(f'parameter "rate_hz" must be positive, got {rate}')
        self.period = 1.0 / rate
        self.timer = self.create_timer(self.period, self.publish_next)
        self.get_logger().info(f'playing {path}: {len(self.episode)} frames at {rate} Hz')

    def publish_next(self):
        if self.finished:
            return
        i = self.index
        stamp = self.get_clock().now().nanoseconds
        episode = self.episode
        self.rgb_pub.publish(conversions.rgb_to_image(episode.rgb[i], self.camera_frame, stamp))
        if episode.depth is not None:
            self.depth_pub.publish(
                conversions.depth_to_image(episode.depth[i], self.camera_frame, stamp))
        self.info_pub.publish(conversions.intrinsics_to_camera_info(
            episode.K, episode.image_size, self.camera_frame, stamp))
        self.odom_pub.publish(self.odometry(i, stamp))
        self.frames_published += 1
        self.index += 1
        if self.index >= len(episode):
            if self.loop:
                self.index = 0
            else:
                self.finished = True
                self.get_logger().info(f'episode finished after {self.frames_published} frames')

    def odometry(self, i, stamp):
        previous = self.base_poses[max(i - 1, 0)]
        current = self.base_poses[i]
        motion = geometry.invert_pose(previous) @ current
        linear = motion[:3, 3] / self.period
        yaw_rate = np.arctan2(motion[1, 0], motion[0, 0]) / self.period
        return conversions.pose_to_odometry(current, stamp, self.odom_frame, self.base_frame,
                                            linear=linear, angular=(0.0, 0.0, yaw_rate))


def main(args=None):
    run_nodes([EpisodePlayer], args=args)


if __name__ == '__main__':
    main()
