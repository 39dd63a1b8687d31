"""The world model node as its users see it: latest diagnostics and the age of predictions."""

import threading

from diagnostic_msgs.msg import DiagnosticArray
from mowm_ros.nodes import conversions
from sensor_msgs.msg import Image

STATUS = 'mowm_ros: world_model'


class NodeListener:
    """
    Keep the node's latest diagnostics values and the age of every prediction on arrival.

    A prediction's first frame is stamped ``frame_interval_s`` after the moment it was made
    from (the newer of the odometry and the newest frame its rollout started from); its age
    is the time from that moment to its arrival here.
    """

    def __init__(self, node, frame_interval_s=0.5):
        self.lock = threading.Lock()
        self.values = {}
        self.updates = 0          # diagnostics messages of the node received so far
        self.ages_s = []
        self.offset_ns = int(frame_interval_s * 1e9)
        self.clock = node.get_clock()
        node.create_subscription(DiagnosticArray, '/diagnostics', self._diagnostics, 10)
        node.create_subscription(Image, '/world_model/predicted/image', self._prediction, 2)

    def _diagnostics(self, msg):
        for status in msg.status:
            if status.name == STATUS:
                with self.lock:
                    self.values = {kv.key: kv.value for kv in status.values}
                    self.updates += 1

    def _prediction(self, msg):
        started_from = conversions.stamp_to_ns(msg.header.stamp) - self.offset_ns
        with self.lock:
            self.ages_s.append((self.clock.now().nanoseconds - started_from) / 1e9)

    def value(self, key, kind=float):
        with self.lock:
            return kind(self.values[key]) if key in self.values else None

    def snapshot(self):
        with self.lock:
            return dict(self.values)

    def ages(self):
        with self.lock:
            return list(self.ages_s)

    def take(self):
        """Return (diagnostics values, ages since the last take) and start a new window."""
        with self.lock:
            ages, self.ages_s = self.ages_s, []
            return dict(self.values), ages
