"""
Decode ROS message fields to numpy: images, depth, camera intrinsics, poses and stamps.

The functions read plain attributes (``height``, ``width``, ``encoding``, ``step``,
``is_bigendian``, ``data``; ``k`` of a CameraInfo; ``position``/``orientation`` of a Pose;
``sec``/``nanosec`` of a Time), so they work on rclpy messages and on the message objects of
the ``rosbags`` library alike. This module sits at the bottom of the package (beside
``geometry``) and never imports rclpy. Every decoder either returns a well-formed array or
raises CodecError with a message that names the problem; none trusts the declared sizes.
"""

import math

from mowm_ros import geometry
import numpy as np

COLOR_ENCODINGS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}
DEPTH_ENCODINGS = {'32FC1': np.dtype('<f4'), '16UC1': np.dtype('<u2')}
MAX_IMAGE_SIDE = 8192
MAX_INTRINSIC_PIXELS = 1e6      # focal lengths, principal point, skew
MAX_POSITION_M = 1e9            # |x|, |y|, |z| of a pose: finite, and squares stay finite


class CodecError(ValueError):
    """A message field that cannot be decoded; the message says why."""


def stamp_to_ns(stamp):
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def check_image_size(width, height):
    """Raise CodecError for an empty image or one with a side over MAX_IMAGE_SIDE."""
    if height <= 0 or width <= 0:
        raise CodecError(f'image has zero size ({width}x{height})')
    if height > MAX_IMAGE_SIDE or width > MAX_IMAGE_SIDE:
        raise CodecError(f'image size {width}x{height} exceeds {MAX_IMAGE_SIDE} pixels')


def _image_rows(msg, channels, itemsize):
    """Return the (height, row_bytes) uint8 view of an image's pixel rows, padding removed."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    check_image_size(width, height)
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise CodecError(f'step {step} is smaller than width*channels*bytes = {row_bytes}')
    data = msg.data
    if not isinstance(data, (bytes, bytearray)):
        data = np.asarray(data, dtype=np.uint8).tobytes()
    needed = step * (height - 1) + row_bytes
    if len(data) < needed:
        raise CodecError(f'image data has {len(data)} bytes, expected at least {needed} '
                         f'for {height} rows of step {step}')
    # Rows read in place at their step: only the last row's trailing padding may be absent,
    # and nothing beyond the pixels is allocated (a huge declared step costs no memory).
    buffer = np.frombuffer(data, dtype=np.uint8, count=needed)
    rows = np.lib.stride_tricks.as_strided(buffer, shape=(height, row_bytes),
                                           strides=(step, 1), writeable=False)
    return rows.copy(), height, width


def decode_rgb(msg):
    """RGB uint8 (H, W, 3) from an rgb8, bgr8, rgba8, bgra8 or mono8 image."""
    encoding = msg.encoding.lower()
    if encoding not in COLOR_ENCODINGS:
        raise CodecError(f'unsupported colour encoding {msg.encoding!r}; '
                         f'expected one of {sorted(COLOR_ENCODINGS)}')
    channels = COLOR_ENCODINGS[encoding]
    rows, height, width = _image_rows(msg, channels, 1)
    pixels = np.ascontiguousarray(rows).reshape(height, width, channels)
    if encoding == 'mono8':
        return np.repeat(pixels, 3, axis=2)
    if encoding.startswith('bgr'):
        pixels = pixels[:, :, 2::-1]
    return np.ascontiguousarray(pixels[:, :, :3])


def decode_depth(msg):
    """Depth float32 (H, W) in metres (NaN invalid) from a 32FC1 (m) or 16UC1 (mm) image."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise CodecError(f'unsupported depth encoding {msg.encoding!r}; '
                         f'expected one of {sorted(DEPTH_ENCODINGS)}')
    dtype = DEPTH_ENCODINGS[msg.encoding]
    if msg.is_bigendian:
        dtype = dtype.newbyteorder('>')
    rows, height, width = _image_rows(msg, 1, dtype.itemsize)
    values = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
    if msg.encoding == '16UC1':
        return depth_from_millimetres(values)
    return depth_from_metres(values)


def depth_from_millimetres(values):
    """Depth float32 in metres from integer millimetres, 0 meaning invalid (NaN)."""
    depth = np.asarray(values).astype(np.float32) / 1000.0
    depth[np.asarray(values) == 0] = np.nan
    return depth


def depth_from_metres(values):
    """Depth float32 in metres; NaN, inf and values <= 0 become NaN (invalid)."""
    depth = np.array(values, dtype=np.float32)
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def encode_rgb(rgb, encoding='rgb8'):
    """Return (bytes, step) of an RGB uint8 (H, W, 3) image in ``encoding`` (rgb8 or bgr8)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if encoding == 'bgr8':
        rgb = np.ascontiguousarray(rgb[:, :, ::-1])
    elif encoding != 'rgb8':
        raise CodecError(f'cannot encode colour images as {encoding!r}')
    return rgb.tobytes(), rgb.shape[1] * 3


def encode_depth(depth, encoding='32FC1'):
    """Return (bytes, step) of a depth image in metres as 32FC1 (m) or 16UC1 (mm, 0 invalid)."""
    depth = np.asarray(depth, dtype=np.float32)
    if encoding == '32FC1':
        values = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype('<f4')
    elif encoding == '16UC1':
        millimetres = np.where(np.isfinite(depth), np.round(depth * 1000.0), 0)
        values = np.clip(millimetres, 0, 65535).astype('<u2')
    else:
        raise CodecError(f'cannot encode depth images as {encoding!r}')
    return values.tobytes(), depth.shape[1] * values.itemsize


def decode_intrinsics(msg):
    """(K 3x3, (width, height)) from a CameraInfo, validated."""
    k = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    if len(k) != 9:
        raise CodecError(f'camera_info.k has {len(k)} values, expected 9')
    K = k.reshape(3, 3)
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise CodecError(f'camera_info has zero size ({width}x{height})')
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
        raise CodecError(f'camera_info size {width}x{height} exceeds {MAX_IMAGE_SIDE} pixels')
    try:
        geometry.check_intrinsics(K, 'camera_info.k')
    except geometry.GeometryError as exc:
        raise CodecError(str(exc)) from None
    if not np.allclose(K[2], [0.0, 0.0, 1.0], rtol=0.0, atol=1e-9):
        raise CodecError(f'camera_info.k last row must be [0, 0, 1], got {K[2].tolist()}')
    if np.abs(K[:2]).max() > MAX_INTRINSIC_PIXELS:
        # Finite but absurd: scaled to the model's 64x64 view it would overflow to inf.
        raise CodecError(f'camera_info.k values out of range (|value| > '
                         f'{MAX_INTRINSIC_PIXELS:g} pixels): {K[:2].ravel().tolist()}')
    return K, (width, height)


def decode_pose(pose):
    """4x4 matrix from a geometry_msgs/Pose; NaN, inf or a zero quaternion is rejected."""
    position = (pose.position.x, pose.position.y, pose.position.z)
    orientation = (pose.orientation.x, pose.orientation.y, pose.orientation.z,
                   pose.orientation.w)
    if not all(math.isfinite(v) for v in position + orientation):
        raise CodecError(f'pose has NaN or infinite values: position {position}, '
                         f'orientation {orientation}')
    if max(abs(v) for v in position) > MAX_POSITION_M:
        raise CodecError(f'pose position {position} lies beyond {MAX_POSITION_M:g} m of the '
                         'origin')
    try:
        rotation = geometry.matrix_from_quaternion_xyzw(orientation)
    except geometry.GeometryError as exc:
        raise CodecError(str(exc)) from None
    return geometry.make_pose(rotation, position)
