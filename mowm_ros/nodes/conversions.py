"""
Conversions between ROS 2 messages and numpy, without cv_bridge or sensor_msgs_py.

Every ``*_to_numpy`` either returns a well-formed array or raises ConversionError with a message
that names the problem; none of them trusts the message's declared sizes.
"""

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseStamped
from mowm_ros import geometry, image_codec
from nav_msgs.msg import Odometry, Path
import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

# Decoding lives in image_codec (no rclpy there, so rosbag import can share it).
COLOR_ENCODINGS = image_codec.COLOR_ENCODINGS
DEPTH_ENCODINGS = image_codec.DEPTH_ENCODINGS
MAX_IMAGE_SIDE = image_codec.MAX_IMAGE_SIDE

# One error type for every conversion, whether raised here or by the codec.
ConversionError = image_codec.CodecError

stamp_to_ns = image_codec.stamp_to_ns


def ns_to_stamp(ns):
    ns = int(ns)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def make_header(frame_id, stamp_ns):
    return Header(frame_id=frame_id, stamp=ns_to_stamp(stamp_ns))


def image_to_rgb(msg):
    """RGB uint8 (H, W, 3) from an rgb8, bgr8, rgba8, bgra8 or mono8 Image."""
    return image_codec.decode_rgb(msg)


def image_to_depth(msg):
    """Depth float32 (H, W) in metres (NaN invalid) from a 32FC1 (m) or 16UC1 (mm) Image."""
    return image_codec.decode_depth(msg)


def rgb_to_image(rgb, frame_id, stamp_ns, encoding='rgb8'):
    data, step = image_codec.encode_rgb(rgb, encoding)
    height, width = np.shape(rgb)[:2]
    return Image(header=make_header(frame_id, stamp_ns), height=height, width=width,
                 encoding=encoding, is_bigendian=0, step=step, data=data)


def depth_to_image(depth, frame_id, stamp_ns, encoding='32FC1'):
    data, step = image_codec.encode_depth(depth, encoding)
    height, width = np.shape(depth)
    return Image(header=make_header(frame_id, stamp_ns), height=height, width=width,
                 encoding=encoding, is_bigendian=0, step=step, data=data)


def camera_info_to_intrinsics(msg):
    """(K 3x3, (width, height)) from a CameraInfo, validated."""
    return image_codec.decode_intrinsics(msg)


def intrinsics_to_camera_info(K, size, frame_id, stamp_ns):
    width, height = size
    K = np.asarray(K, dtype=np.float64)
    projection = np.zeros((3, 4))
    projection[:, :3] = K
    return CameraInfo(header=make_header(frame_id, stamp_ns), width=int(width),
                      height=int(height), distortion_model='plumb_bob', d=[0.0] * 5,
                      k=K.reshape(-1).tolist(), r=np.eye(3).reshape(-1).tolist(),
                      p=projection.reshape(-1).tolist())


def pose_msg_to_matrix(pose):
    """4x4 matrix from a geometry_msgs/Pose; NaN, inf or a zero quaternion is rejected."""
    return image_codec.decode_pose(pose)


def matrix_to_pose_msg(matrix):
    x, y, z, w = geometry.quaternion_xyzw_from_matrix(matrix[:3, :3])
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in matrix[:3, 3])
    pose.orientation.x, pose.orientation.y = float(x), float(y)
    pose.orientation.z, pose.orientation.w = float(z), float(w)
    return pose


def odometry_to_pose(msg):
    """(stamp ns, 4x4 world <- base) from an Odometry message."""
    return stamp_to_ns(msg.header.stamp), pose_msg_to_matrix(msg.pose.pose)


def pose_to_odometry(matrix, stamp_ns, frame_id='odom', child_frame_id='base_link',
                     linear=(0.0, 0.0, 0.0), angular=(0.0, 0.0, 0.0)):
    msg = Odometry(header=make_header(frame_id, stamp_ns), child_frame_id=child_frame_id)
    msg.pose.pose = matrix_to_pose_msg(matrix)
    msg.twist.twist.linear.x, msg.twist.twist.linear.y, msg.twist.twist.linear.z = (
        float(v) for v in linear)
    msg.twist.twist.angular.x, msg.twist.twist.angular.y, msg.twist.twist.angular.z = (
        float(v) for v in angular)
    return msg


def poses_to_path(matrices, frame_id, stamps_ns):
    path = Path(header=make_header(frame_id, stamps_ns[0] if len(stamps_ns) else 0))
    path.poses = [PoseStamped(header=make_header(frame_id, stamp), pose=matrix_to_pose_msg(m))
                  for m, stamp in zip(matrices, stamps_ns)]
    return path


def path_to_poses(msg):
    """(N, 4, 4) world <- base poses of a nav_msgs/Path."""
    return np.stack([pose_msg_to_matrix(p.pose) for p in msg.poses]) if msg.poses else \
        np.zeros((0, 4, 4))


_CLOUD_DTYPE = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('rgb', '<u4')])


def points_to_cloud(points, colors, frame_id, stamp_ns):
    """PointCloud2 with fields x, y, z (float32) and rgb (packed uint32) for rviz."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3).astype(np.uint32)
    cloud = np.empty(len(points), _CLOUD_DTYPE)
    cloud['x'], cloud['y'], cloud['z'] = points.T
    cloud['rgb'] = (colors[:, 0] << 16) | (colors[:, 1] << 8) | colors[:, 2]
    fields = [PointField(name=name, offset=_CLOUD_DTYPE.fields[name][1], datatype=kind, count=1)
              for name, kind in (('x', PointField.FLOAT32), ('y', PointField.FLOAT32),
                                 ('z', PointField.FLOAT32), ('rgb', PointField.UINT32))]
    return PointCloud2(header=make_header(frame_id, stamp_ns), height=1, width=len(points),
                       fields=fields, is_bigendian=False, point_step=_CLOUD_DTYPE.itemsize,
                       row_step=_CLOUD_DTYPE.itemsize * len(points), data=cloud.tobytes(),
                       is_dense=True)


# Datatypes accepted per field: rgb is packed 0x00RRGGBB, declared UINT32 or (as by PCL) FLOAT32.
_CLOUD_FIELD_TYPES = {'x': (PointField.FLOAT32,), 'y': (PointField.FLOAT32,),
                      'z': (PointField.FLOAT32,),
                      'rgb': (PointField.UINT32, PointField.FLOAT32, PointField.INT32)}


def cloud_to_points(msg):
    """(points (N, 3) float32, colors (N, 3) uint8) from a PointCloud2 with x, y, z, rgb."""
    fields = {f.name: f for f in msg.fields}
    missing = set(_CLOUD_FIELD_TYPES) - set(fields)
    if missing:
        raise ConversionError(f'point cloud lacks fields {sorted(missing)}')
    for name, allowed in _CLOUD_FIELD_TYPES.items():
        if fields[name].datatype not in allowed:
            raise ConversionError(f'point cloud field {name!r} has datatype '
                                  f'{fields[name].datatype}, expected one of {list(allowed)}')
        if fields[name].count > 1:
            raise ConversionError(f'point cloud field {name!r} has count {fields[name].count}, '
                                  'expected 1')
    offsets = {name: int(fields[name].offset) for name in _CLOUD_FIELD_TYPES}
    count = int(msg.width) * int(msg.height)
    step = int(msg.point_step)
    if step <= 0 or any(offset + 4 > step for offset in offsets.values()):
        raise ConversionError(f'point_step {step} does not hold the fields at {offsets}')
    data = msg.data
    if not isinstance(data, (bytes, bytearray)):
        data = np.asarray(data, dtype=np.uint8).tobytes()
    if len(data) < count * step:
        raise ConversionError(f'cloud data has {len(data)} bytes, expected {count * step}')
    rows = np.frombuffer(data, dtype=np.uint8, count=count * step).reshape(count, step)
    order = '>' if msg.is_bigendian else '<'

    def column(name, kind):
        offset = offsets[name]
        return np.ascontiguousarray(rows[:, offset:offset + 4]).view(order + kind)[:, 0]

    points = np.stack([column(axis, 'f4') for axis in 'xyz'], axis=-1).astype(np.float32)
    rgb = column('rgb', 'u4').astype(np.uint32)
    colors = np.stack([(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255], axis=-1).astype(np.uint8)
    return points, colors
