"""
Conversions between ROS 2 messages and numpy, without cv_bridge or sensor_msgs_py.

Every ``*_to_numpy`` either returns a well-formed array or raises ConversionError with a message
that names the problem; none of them trusts the message's declared sizes.
"""

import math

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseStamped
from mowm_ros import geometry
from nav_msgs.msg import Odometry, Path
import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

COLOR_ENCODINGS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}
DEPTH_ENCODINGS = {'32FC1': np.dtype('<f4'), '16UC1': np.dtype('<u2')}
MAX_IMAGE_SIDE = 8192


class ConversionError(ValueError):
    """A message that cannot be converted; the message says why."""


def stamp_to_ns(stamp):
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns):
    ns = int(ns)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def make_header(frame_id, stamp_ns):
    return Header(frame_id=frame_id, stamp=ns_to_stamp(stamp_ns))


def _image_buffer(msg, channels, itemsize):
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ConversionError(f'image has zero size ({width}x{height})')
    if height > MAX_IMAGE_SIDE or width > MAX_IMAGE_SIDE:
        raise ConversionError(f'image size {width}x{height} exceeds {MAX_IMAGE_SIDE} pixels')
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise ConversionError(f'step {step} is smaller than width*channels*bytes = {row_bytes}')
    data = bytes(msg.data) if not isinstance(msg.data, (bytes, bytearray)) else msg.data
    needed = step * (height - 1) + row_bytes
    if len(data) < needed:
        raise ConversionError(f'image data has {len(data)} bytes, expected at least {needed} '
                              f'for {height} rows of step {step}')
    # Only the last row's trailing padding may be absent.
    padded = data[:step * height].ljust(step * height, b'\0')
    buffer = np.frombuffer(padded, dtype=np.uint8)
    rows = buffer.reshape(height, step)[:, :row_bytes]
    return rows, height, width


def image_to_rgb(msg):
    """RGB uint8 (H, W, 3) from an rgb8, bgr8, rgba8, bgra8 or mono8 Image."""
    encoding = msg.encoding.lower()
    if encoding not in COLOR_ENCODINGS:
        raise ConversionError(f'unsupported colour encoding {msg.encoding!r}; '
                              f'expected one of {sorted(COLOR_ENCODINGS)}')
    channels = COLOR_ENCODINGS[encoding]
    rows, height, width = _image_buffer(msg, channels, 1)
    pixels = np.ascontiguousarray(rows).reshape(height, width, channels)
    if encoding == 'mono8':
        return np.repeat(pixels, 3, axis=2)
    if encoding.startswith('bgr'):
        pixels = pixels[:, :, 2::-1]
    return np.ascontiguousarray(pixels[:, :, :3])


def image_to_depth(msg):
    """Depth float32 (H, W) in metres (NaN invalid) from a 32FC1 (m) or 16UC1 (mm) Image."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ConversionError(f'unsupported depth encoding {msg.encoding!r}; '
                              f'expected one of {sorted(DEPTH_ENCODINGS)}')
    dtype = DEPTH_ENCODINGS[msg.encoding]
    if msg.is_bigendian:
        dtype = dtype.newbyteorder('>')
    rows, height, width = _image_buffer(msg, 1, dtype.itemsize)
    values = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
    if msg.encoding == '16UC1':
        depth = values.astype(np.float32) / 1000.0
        depth[values == 0] = np.nan
    else:
        depth = values.astype(np.float32)
        depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def rgb_to_image(rgb, frame_id, stamp_ns, encoding='rgb8'):
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if encoding == 'bgr8':
        rgb = np.ascontiguousarray(rgb[:, :, ::-1])
    elif encoding != 'rgb8':
        raise ConversionError(f'cannot encode colour images as {encoding!r}')
    height, width = rgb.shape[:2]
    return Image(header=make_header(frame_id, stamp_ns), height=height, width=width,
                 encoding=encoding, is_bigendian=0, step=width * 3, data=rgb.tobytes())


def depth_to_image(depth, frame_id, stamp_ns, encoding='32FC1'):
    depth = np.asarray(depth, dtype=np.float32)
    height, width = depth.shape
    if encoding == '32FC1':
        values = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype('<f4')
    elif encoding == '16UC1':
        millimetres = np.where(np.isfinite(depth), np.round(depth * 1000.0), 0)
        values = np.clip(millimetres, 0, 65535).astype('<u2')
    else:
        raise ConversionError(f'cannot encode depth images as {encoding!r}')
    return Image(header=make_header(frame_id, stamp_ns), height=height, width=width,
                 encoding=encoding, is_bigendian=0, step=width * values.itemsize,
                 data=values.tobytes())


def camera_info_to_intrinsics(msg):
    """(K 3x3, (width, height)) from a CameraInfo, validated."""
    K = np.array(msg.k, dtype=np.float64).reshape(3, 3) if len(msg.k) == 9 else None
    if K is None:
        raise ConversionError(f'camera_info.k has {len(msg.k)} values, expected 9')
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise ConversionError(f'camera_info has zero size ({width}x{height})')
    try:
        geometry.check_intrinsics(K, 'camera_info.k')
    except geometry.GeometryError as exc:
        raise ConversionError(str(exc)) from None
    return K, (width, height)


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
    position = (pose.position.x, pose.position.y, pose.position.z)
    orientation = (pose.orientation.x, pose.orientation.y, pose.orientation.z,
                   pose.orientation.w)
    if not all(math.isfinite(v) for v in position + orientation):
        raise ConversionError(f'pose has NaN or infinite values: position {position}, '
                              f'orientation {orientation}')
    try:
        rotation = geometry.matrix_from_quaternion_xyzw(orientation)
    except geometry.GeometryError as exc:
        raise ConversionError(str(exc)) from None
    return geometry.make_pose(rotation, position)


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


def cloud_to_points(msg):
    """(points (N, 3) float32, colors (N, 3) uint8) from a PointCloud2 with x, y, z, rgb."""
    offsets = {f.name: f.offset for f in msg.fields}
    missing = {'x', 'y', 'z', 'rgb'} - set(offsets)
    if missing:
        raise ConversionError(f'point cloud lacks fields {sorted(missing)}')
    count = int(msg.width) * int(msg.height)
    step = int(msg.point_step)
    if step <= 0 or any(offset + 4 > step for offset in offsets.values()):
        raise ConversionError(f'point_step {step} does not hold the fields at {offsets}')
    data = bytes(msg.data)
    if len(data) < count * step:
        raise ConversionError(f'cloud data has {len(data)} bytes, expected {count * step}')
    dtype = np.dtype({'names': ['x', 'y', 'z', 'rgb'], 'formats': ['<f4', '<f4', '<f4', '<u4'],
                      'offsets': [offsets[k] for k in ('x', 'y', 'z', 'rgb')],
                      'itemsize': step})
    cloud = np.frombuffer(data, dtype=dtype, count=count)
    points = np.stack([cloud['x'], cloud['y'], cloud['z']], axis=-1)
    rgb = cloud['rgb']
    colors = np.stack([(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255], axis=-1).astype(np.uint8)
    return points, colors
