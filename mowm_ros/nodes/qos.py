"""QoS profiles of the world model's outputs, shared with the nodes that subscribe to them."""

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

RELIABLE_2 = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
RELIABLE_1 = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
