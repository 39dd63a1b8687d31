"""
TF for the nodes: tf2_ros's buffer where it is importable, else /tf and /tf_static read here.

tf2_ros comes with a ROS distribution, not with the pip-only install. Without it
``TransformSource`` subscribes to /tf and /tf_static itself (tf2_msgs/TFMessage, with tf2's
QoS) and composes them with ``data.tf_tree.TransformHistory``: at a stamp it takes each
dynamic edge's newest pose at or before it, where tf2 interpolates between the two around it
(past tf2's newest transform, that one is taken, as without tf2). Either way a missing
transform raises ``TransformError`` naming the frames. With neither tf2_ros nor tf2_msgs
importable (the pip-only wheels have no tf2_msgs) there is no TF: ``TransformSource.for_node``
raises ValueError saying what to install.
"""

from mowm_ros.data.tf_tree import transform_matrix, TransformError, TransformHistory
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time

__all__ = ['TransformError', 'TransformSource', 'tf2_buffer']

# As tf2_ros's TransformListener subscribes: reliable, 100 deep; /tf_static latched.
TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
TF_STATIC_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


def tf2_buffer(node):
    """Return a tf2_ros Buffer listened to by ``node`` where tf2_ros is installed, else None."""
    try:
        import tf2_ros  # lazy: optional, from a ROS distribution
    except ImportError:
        return None
    buffer = tf2_ros.Buffer()
    node._tf_listener = tf2_ros.TransformListener(buffer, node)
    return buffer


class TransformSource:
    """
    Poses target <- source from TF at a stamp.

    From a tf2_ros ``buffer``, else from the TFMessages given to ``add`` (``for_node``
    subscribes it to /tf and /tf_static).
    """

    def __init__(self, buffer=None, logger=None):
        self.buffer = buffer
        self.history = TransformHistory() if buffer is None else None
        self.logger = logger
        self.rejected = 0            # TF messages that could not be decoded

    @classmethod
    def for_node(cls, node, buffer=None):
        """
        Return the node's source of transforms.

        ``buffer`` (a tf2_ros Buffer it already listens with), else tf2_ros's own where
        importable, else its own /tf and /tf_static subscriptions.

        The subscriptions take transforms in every lifecycle state (a latched /tf_static
        arrives once, at configure) and go at cleanup (``ManagedNode.keep``). Raise ValueError
        when neither tf2_ros nor tf2_msgs is importable.
        """
        buffer = buffer if buffer is not None else tf2_buffer(node)
        source = cls(buffer, node.get_logger())
        if buffer is None:
            try:
                from tf2_msgs.msg import TFMessage  # lazy: optional, not in the pip wheels
            except ImportError:
                raise ValueError('no TF here: neither tf2_ros nor tf2_msgs is importable; '
                                 'source a ROS distribution or install the tf2_msgs '
                                 'package') from None
            node.keep(node.create_subscription(
                TFMessage, '/tf', lambda msg: source.add(msg), TF_QOS))
            node.keep(node.create_subscription(
                TFMessage, '/tf_static', lambda msg: source.add(msg, static=True),
                TF_STATIC_QOS))
        return source

    @property
    def backend(self):
        return 'tf2_ros' if self.history is None else 'own /tf listener'

    def add(self, msg, static=False):
        """Take one tf2_msgs/TFMessage (of /tf_static when ``static``); drop a bad one, counted."""
        try:
            self.history.add(msg, static=static)
        except TransformError as exc:
            self.rejected += 1
            if self.logger is not None:
                self.logger.warning(f'dropped a TF message: {exc}', throttle_duration_sec=5.0)

    def lookup(self, target, source, stamp):
        """Return the 4x4 pose of ``source`` in ``target`` at ``stamp`` (ns); TransformError."""
        if self.history is not None:
            return self.history.chain(target, source, stamp)[0]
        try:
            transform = self.buffer.lookup_transform(target, source, Time(nanoseconds=stamp))
        except Exception as exc:  # noqa: B902 - tf2 raises several types, none a ValueError
            # Past TF's newest transform (tf2 does not extrapolate): that one, as without tf2.
            newest = self._newest(target, source)
            if newest is None or newest[0] > stamp:
                raise TransformError(f'no transform {target} <- {source} at stamp {stamp}: '
                                     f'{exc}') from None
            transform = newest[1]
        return transform_matrix(transform.transform, f'transform {target} <- {source}')

    def _newest(self, target, source):
        """Return (stamp ns, TransformStamped) of tf2's newest target <- source, or None."""
        try:
            transform = self.buffer.lookup_transform(target, source, Time())
        except Exception:  # noqa: B902 - tf2 raises several types
            return None
        stamp = transform.header.stamp
        return stamp.sec * 1_000_000_000 + stamp.nanosec, transform
