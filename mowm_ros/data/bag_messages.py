"""
ROS 2 messages built with ``rosbags`` (no ROS): what a robot driver records, ready to write.

Each builder returns a rosbags message object of the ROS 2 Humble type store; ``serialize``
turns one into the CDR bytes a rosbag2 writer stores. Used by ``mowm data record-sim`` and
by the tests' recordings.
"""

from mowm_ros import geometry, image_codec
import numpy as np
from rosbags.typesys import get_typestore, Stores

STORE = get_typestore(Stores.ROS2_HUMBLE)
T = STORE.types


def serialize(msg, msgtype):
    return STORE.serialize_cdr(msg, msgtype)


def header(stamp_ns, frame_id):
    stamp = T['builtin_interfaces/msg/Time'](sec=int(stamp_ns // 10**9),
                                             nanosec=int(stamp_ns % 10**9))
    return T['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id)


def image_msg(stamp, data, step, height, width, encoding, frame_id='camera_optical'):
    return T['sensor_msgs/msg/Image'](
        header=header(stamp, frame_id), height=height, width=width, encoding=encoding,
        is_bigendian=0, step=step, data=np.frombuffer(data, np.uint8).copy())


def rgb_msg(stamp, rgb, frame_id='camera_optical', encoding='rgb8'):
    """sensor_msgs/Image of an RGB uint8 (H, W, 3) image (rgb8 or bgr8)."""
    data, step = image_codec.encode_rgb(rgb, encoding)
    return image_msg(stamp, data, step, rgb.shape[0], rgb.shape[1], encoding, frame_id)


def depth_msg(stamp, depth, frame_id='camera_optical', encoding='32FC1'):
    """sensor_msgs/Image of a depth image in metres (32FC1, or 16UC1 millimetres)."""
    data, step = image_codec.encode_depth(depth, encoding)
    return image_msg(stamp, data, step, depth.shape[0], depth.shape[1], encoding, frame_id)


def odometry_msg(stamp, pose, child_frame_id='base_link', frame_id='odom'):
    """nav_msgs/Odometry of the 4x4 pose ``frame_id`` <- ``child_frame_id`` (zero twist)."""
    x, y, z, w = geometry.quaternion_xyzw_from_matrix(pose[:3, :3])
    point = T['geometry_msgs/msg/Point'](*(float(v) for v in pose[:3, 3]))
    quaternion = T['geometry_msgs/msg/Quaternion'](x=x, y=y, z=z, w=w)
    vector = T['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.0)
    return T['nav_msgs/msg/Odometry'](
        header=header(stamp, frame_id), child_frame_id=child_frame_id,
        pose=T['geometry_msgs/msg/PoseWithCovariance'](
            pose=T['geometry_msgs/msg/Pose'](position=point, orientation=quaternion),
            covariance=np.zeros(36)),
        twist=T['geometry_msgs/msg/TwistWithCovariance'](
            twist=T['geometry_msgs/msg/Twist'](linear=vector, angular=vector),
            covariance=np.zeros(36)))


def camera_info_msg(stamp, K, width, height, frame_id='camera_optical'):
    projection = np.zeros((3, 4))
    projection[:, :3] = K
    return T['sensor_msgs/msg/CameraInfo'](
        header=header(stamp, frame_id), height=height, width=width,
        distortion_model='plumb_bob', d=np.zeros(5), k=np.asarray(K).reshape(-1),
        r=np.eye(3).reshape(-1), p=projection.reshape(-1), binning_x=0, binning_y=0,
        roi=T['sensor_msgs/msg/RegionOfInterest'](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def tf_message(stamp, transforms):
    """tf2_msgs/TFMessage of (parent, child, 4x4 parent <- child) triples."""
    stamped = []
    for parent, child, pose in transforms:
        x, y, z, w = geometry.quaternion_xyzw_from_matrix(pose[:3, :3])
        stamped.append(T['geometry_msgs/msg/TransformStamped'](
            header=header(stamp, parent), child_frame_id=child,
            transform=T['geometry_msgs/msg/Transform'](
                translation=T['geometry_msgs/msg/Vector3'](*(float(v) for v in pose[:3, 3])),
                rotation=T['geometry_msgs/msg/Quaternion'](x=x, y=y, z=z, w=w))))
    return T['tf2_msgs/msg/TFMessage'](transforms=stamped)
