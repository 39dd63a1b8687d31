"""Records what a camera driver (sim_robot, episode_player) publishes, for DDS tests."""

import threading

from mowm_ros.nodes import conversions
from nav_msgs.msg import Odometry
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image


class CameraRecorder:
    """Subscribes to a camera driver's topics with the production QoS and keeps what arrives."""

    TOPICS = (('rgb', Image, 'camera/image_raw'), ('depth', Image, 'camera/depth/image_raw'),
              ('info', CameraInfo, 'camera/camera_info'), ('odom', Odometry, 'odom'))

    def __init__(self, node, namespace=''):
        self.lock = threading.Lock()
        self.messages = {key: [] for key, _, _ in self.TOPICS}
        prefix = f'{namespace}/' if namespace else ''
        for key, msg_type, topic in self.TOPICS:
            node.create_subscription(msg_type, prefix + topic, self._keep(key),
                                     qos_profile_sensor_data)

    def _keep(self, key):
        def callback(msg):
            with self.lock:
                self.messages[key].append(msg)
        return callback

    def count(self, key=None):
        with self.lock:
            if key is None:
                return min(len(m) for m in self.messages.values())
            return len(self.messages[key])

    def by_stamp(self):
        with self.lock:
            return {key: {conversions.stamp_to_ns(m.header.stamp): m for m in messages}
                    for key, messages in self.messages.items()}

    def last_base(self):
        with self.lock:
            return conversions.odometry_to_pose(self.messages['odom'][-1])[1]
