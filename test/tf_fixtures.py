"""TF messages for tests: geometry_msgs/TransformStamped in a tf2_msgs/TFMessage or stand-in."""

from types import SimpleNamespace

from geometry_msgs.msg import Transform, TransformStamped, Vector3
from mowm_ros.nodes import conversions

try:
    from tf2_msgs.msg import TFMessage
except ImportError:      # not in the pip-only ROS wheels: TFMessage is None, see tf_message
    TFMessage = None


def transform_stamped(parent, child, pose, stamp):
    """Return the pose of ``child`` in ``parent`` (4x4) at ``stamp`` (ns)."""
    msg = conversions.matrix_to_pose_msg(pose)
    p = msg.position
    return TransformStamped(header=conversions.make_header(parent, stamp), child_frame_id=child,
                            transform=Transform(translation=Vector3(x=p.x, y=p.y, z=p.z),
                                                rotation=msg.orientation))


def tf_message(*transforms):
    """
    Return a TFMessage of ``transforms`` (TransformStamped).

    Where tf2_msgs is not installed, a stand-in with the same ``transforms`` field (what
    ``data.tf_tree`` reads), holding real TransformStamped.
    """
    if TFMessage is None:
        return SimpleNamespace(transforms=list(transforms))
    return TFMessage(transforms=list(transforms))
