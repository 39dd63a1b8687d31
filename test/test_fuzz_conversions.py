"""
Fuzz every message -> numpy conversion with hypothesis, then the node's callbacks.

Each generated message is either accepted, and then the result must equal what a plain
reference decoder written here computes (and keep the invariants: shapes, dtypes, finite
poses, NaN for invalid depth), or rejected with a ConversionError (a ValueError) whose message
names one of the problems the message really has. The last test feeds the same hostile messages
into a live WorldModelNode's callbacks: nothing may escape a callback or fail on a worker
thread, and good frames sent afterwards are still observed. Run time is bounded by
``max_examples`` (about 20 s in all on a loaded 2-core machine).
"""

import math
import time
import tracemalloc
import types

from geometry_msgs.msg import Pose, PoseStamped
from hypothesis import given, HealthCheck, settings, strategies as st
from mowm_ros import geometry
from mowm_ros.nodes import conversions
from nav_msgs.msg import Odometry, Path
import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

UINT32_MAX = 2**32 - 1
MAX_SIDE = conversions.MAX_IMAGE_SIDE
MAX_DATA = 1 << 16          # bytes of generated message data, whatever the declared size

FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

COLOUR_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}
DEPTH_ITEMSIZE = {'32FC1': 4, '16UC1': 2}
HOSTILE_ENCODINGS = ['RGB8', 'Bgr8', 'MONO8', 'yuv422', '8UC3', '', 'rgb8 ', '32fc1', '16UC3',
                     '64FC1', '8UC1', 'rgb16', 'bayer_rggb8', 'rgb8\u00e9']
SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 1e-45, 1e-38, 0.05, 1.5,
                  7.25, 1e6, 3.4e38, -3.4e38]
ANY_FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                      st.sampled_from([1e308, -1e308, 1e-308, 5e-324, 1e200, -1e200]))
STAMPS = st.one_of(st.tuples(st.integers(-2**31, 2**31 - 1), st.integers(0, UINT32_MAX)),
                   st.sampled_from([(2**31 - 1, UINT32_MAX), (-2**31, 0), (0, 0)]))


# --- reference decoders -------------------------------------------------------------------

def reference_rows(msg, bytes_per_pixel):
    """Return (rows as a (H, W * bpp) uint8 array, reasons): reasons is empty when valid."""
    height, width, step = msg.height, msg.width, msg.step
    data = bytes(msg.data)
    reasons = []
    if height == 0 or width == 0:
        reasons.append('zero size')
    if height > MAX_SIDE or width > MAX_SIDE:
        reasons.append('exceeds')
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        reasons.append('smaller than')
    elif height and len(data) < step * (height - 1) + row_bytes:
        reasons.append('expected at least')
    if reasons:
        return None, reasons
    rows = [data[r * step:r * step + row_bytes] for r in range(height)]
    return np.frombuffer(b''.join(rows), np.uint8).reshape(height, row_bytes), []


def reference_rgb(msg):
    encoding = msg.encoding.lower()
    if encoding not in COLOUR_CHANNELS:
        return None, ['unsupported colour encoding']
    channels = COLOUR_CHANNELS[encoding]
    rows, reasons = reference_rows(msg, channels)
    if reasons:
        return None, reasons
    pixels = rows.reshape(msg.height, msg.width, channels)
    if channels == 1:
        return np.concatenate([pixels] * 3, axis=2), []
    rgb = pixels[:, :, :3]
    return (rgb[:, :, ::-1] if encoding.startswith('bgr') else rgb), []


def reference_depth(msg):
    if msg.encoding not in DEPTH_ITEMSIZE:
        return None, ['unsupported depth encoding']
    itemsize = DEPTH_ITEMSIZE[msg.encoding]
    rows, reasons = reference_rows(msg, itemsize)
    if reasons:
        return None, reasons
    kind = {'32FC1': 'f4', '16UC1': 'u2'}[msg.encoding]
    order = '>' if msg.is_bigendian else '<'
    values = np.frombuffer(rows.tobytes(), order + kind).reshape(msg.height, msg.width)
    depth = np.full(values.shape, np.nan, np.float32)
    for index, value in np.ndenumerate(values):
        if msg.encoding == '16UC1':
            if value:
                depth[index] = np.float32(value) / np.float32(1000.0)
        elif math.isfinite(value) and value > 0:
            depth[index] = value
    return depth, []


def check_decoded(decode, reference, msg):
    """Check that a message is decoded like the reference or rejected naming a real problem."""
    expected, reasons = reference(msg)
    try:
        result = decode(msg)
    except conversions.ConversionError as exc:
        assert isinstance(exc, ValueError)
        assert reasons, f'valid message rejected: {exc}'
        assert any(reason in str(exc) for reason in reasons), (str(exc), reasons)
        return None
    assert not reasons, f'accepted a message with problems {reasons}'
    assert result.shape == expected.shape and result.dtype == expected.dtype
    np.testing.assert_array_equal(result, expected)
    return result


# --- strategies ---------------------------------------------------------------------------

def _side():
    return st.one_of(st.integers(0, 24), st.integers(0, 300),
                     st.sampled_from([MAX_SIDE, MAX_SIDE + 1, 2**31, UINT32_MAX]))


@st.composite
def image_messages(draw, known, stamp=None, size=None):
    """Image with a known or hostile encoding and any combination of sizes, step and data."""
    encoding = draw(st.one_of(st.sampled_from(sorted(known)), st.sampled_from(HOSTILE_ENCODINGS),
                              st.text(max_size=8)))
    bytes_per_pixel = known.get(encoding) or draw(st.integers(1, 8))
    if size is not None and draw(st.booleans()):
        width, height = size
    else:
        width, height = draw(_side()), draw(_side())
    row = width * bytes_per_pixel
    step = draw(st.one_of(st.just(row), st.integers(row, row + 9), st.integers(0, row + 9),
                          st.sampled_from([2**31, UINT32_MAX])))
    step = min(step, UINT32_MAX)
    full = step * height
    length = draw(st.one_of(st.just(full), st.just(max(full - (step - row), 0)),
                            st.integers(max(full - 9, 0), full + 9), st.integers(0, 64)))
    length = min(length, MAX_DATA)
    is_bigendian = draw(st.sampled_from([0, 1, 255]))
    rng = np.random.default_rng(draw(st.integers(0, UINT32_MAX)))
    if encoding == '32FC1':
        values = rng.choice(np.array(SPECIAL_FLOATS, np.float32), length // 4 + 1)
        data = values.astype('>f4' if is_bigendian else '<f4').tobytes()[:length]
    else:
        data = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    sec, nanosec = draw(STAMPS) if stamp is None else stamp
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=is_bigendian,
                step=step, data=data)
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    msg.header.frame_id = draw(st.sampled_from(['camera_optical_frame', '', 'x' * 300]))
    return msg


@st.composite
def camera_info_messages(draw, size=None):
    fx, fy = (draw(st.one_of(ANY_FLOAT, st.floats(1.0, 2000.0))) for _ in range(2))
    cx, cy = (draw(st.one_of(ANY_FLOAT, st.floats(-10.0, 700.0))) for _ in range(2))
    k = [fx, draw(st.sampled_from([0.0, 0.5, math.nan])), cx, 0.0, fy, cy, 0.0, 0.0,
         draw(st.sampled_from([1.0, 1.0, 0.0, 2.0, math.nan]))]
    if draw(st.booleans()):
        k = draw(st.lists(ANY_FLOAT, min_size=9, max_size=9))
    if size is not None and draw(st.booleans()):
        width, height = size
    else:
        width, height = draw(_side()), draw(_side())
    msg = CameraInfo(width=width, height=height, k=k)
    msg.header.stamp.sec, msg.header.stamp.nanosec = draw(STAMPS)
    return msg


@st.composite
def poses(draw):
    pose = Pose()
    finite = st.floats(-100.0, 100.0)
    pose.position.x, pose.position.y, pose.position.z = (
        draw(st.one_of(finite, ANY_FLOAT)) for _ in range(3))
    if draw(st.booleans()):
        quaternion = [draw(st.one_of(st.floats(-1.0, 1.0), ANY_FLOAT)) for _ in range(4)]
    else:
        quaternion = draw(st.sampled_from([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0],
                                           [0.0, 0.0, 0.7071, 0.7071], [1e-12, 0, 0, 0],
                                           [1e200, 0, 0, 1e200], [0.0, 0.0, 0.0, 2.0]]))
    (pose.orientation.x, pose.orientation.y, pose.orientation.z,
     pose.orientation.w) = quaternion
    return pose


@st.composite
def odometry_messages(draw, stamp=None):
    msg = Odometry()
    msg.header.stamp.sec, msg.header.stamp.nanosec = draw(STAMPS) if stamp is None else stamp
    msg.pose.pose = draw(poses())
    msg.twist.twist.linear.x = draw(st.one_of(st.floats(-2.0, 2.0), ANY_FLOAT))
    msg.twist.twist.angular.z = draw(st.one_of(st.floats(-2.0, 2.0), ANY_FLOAT))
    return msg


@st.composite
def path_messages(draw):
    path = Path()
    path.header.frame_id = 'odom'
    path.poses = [PoseStamped(pose=pose) for pose in draw(st.lists(poses(), max_size=6))]
    return path


FIELD_NAMES = ['x', 'y', 'z', 'rgb', 'intensity', 'rgba']
FIELD_SIZES = {PointField.INT8: 1, PointField.UINT8: 1, PointField.INT16: 2,
               PointField.UINT16: 2, PointField.INT32: 4, PointField.UINT32: 4,
               PointField.FLOAT32: 4, PointField.FLOAT64: 8}


@st.composite
def cloud_messages(draw):
    if draw(st.integers(0, 3)) == 0:      # a well-formed cloud, its data maybe cut short
        count = draw(st.integers(0, 20))
        rng = np.random.default_rng(draw(st.integers(0, UINT32_MAX)))
        values = rng.choice(np.array(SPECIAL_FLOATS, np.float32), (count, 3))
        msg = conversions.points_to_cloud(values, rng.integers(0, 256, (count, 3)), 'odom', 0)
        msg.data = bytes(msg.data)[:draw(st.integers(0, len(msg.data)))] \
            if draw(st.booleans()) else msg.data
        return msg
    names = draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=6))
    if draw(st.booleans()):
        names = ['x', 'y', 'z', 'rgb'] + names
    fields = []
    for name in names:
        datatype = draw(st.one_of(st.just(PointField.FLOAT32 if name != 'rgb'
                                          else PointField.UINT32),
                                  st.sampled_from(sorted(FIELD_SIZES)), st.integers(0, 255)))
        fields.append(PointField(name=name, offset=draw(st.integers(0, 40)),
                                 datatype=datatype, count=draw(st.sampled_from([1, 1, 0, 3]))))
    point_step = draw(st.one_of(st.integers(0, 48), st.sampled_from([UINT32_MAX, 2**31])))
    width = draw(st.one_of(st.integers(0, 12), st.sampled_from([UINT32_MAX])))
    height = draw(st.sampled_from([1, 1, 0, 2, UINT32_MAX]))
    full = min(width * height * point_step, MAX_DATA)
    length = min(draw(st.one_of(st.just(full), st.integers(0, full + 8))), MAX_DATA)
    rng = np.random.default_rng(draw(st.integers(0, UINT32_MAX)))
    msg = PointCloud2(height=height, width=width, fields=fields, point_step=point_step,
                      row_step=min(width * point_step, UINT32_MAX),
                      is_bigendian=draw(st.booleans()),
                      data=rng.integers(0, 256, length, dtype=np.uint8).tobytes())
    return msg


# --- pure conversions ---------------------------------------------------------------------

@FUZZ
@given(image_messages(COLOUR_CHANNELS))
def test_colour_images(msg):
    rgb = check_decoded(conversions.image_to_rgb, reference_rgb, msg)
    if rgb is not None:
        assert rgb.shape == (msg.height, msg.width, 3) and rgb.dtype == np.uint8
        assert rgb.flags.c_contiguous


@FUZZ
@given(image_messages(DEPTH_ITEMSIZE))
def test_depth_images(msg):
    depth = check_decoded(conversions.image_to_depth, reference_depth, msg)
    if depth is not None:
        assert depth.shape == (msg.height, msg.width) and depth.dtype == np.float32
        valid = ~np.isnan(depth)
        assert np.all(np.isfinite(depth[valid])) and np.all(depth[valid] > 0)


def test_huge_declared_step_costs_no_memory():
    # One pixel with a 4 GiB row step: the padding of the last row may be absent, and it
    # must not be allocated either.
    msg = Image(height=1, width=1, encoding='rgb8', step=UINT32_MAX, data=bytes([1, 2, 3]))
    tracemalloc.start()
    try:
        np.testing.assert_array_equal(conversions.image_to_rgb(msg), [[[1, 2, 3]]])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f'decoding one pixel allocated {peak} bytes'


@FUZZ
@given(camera_info_messages())
def test_camera_info(msg):
    k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    reasons = []
    if msg.width == 0 or msg.height == 0:
        reasons.append('zero size')
    if msg.width > MAX_SIDE or msg.height > MAX_SIDE:
        reasons.append('exceeds')
    if not np.all(np.isfinite(k)):
        reasons.append('NaN or infinite')
    elif k[0, 0] <= 0 or k[1, 1] <= 0:
        reasons.append('focal lengths must be positive')
    elif not np.allclose(k[2], [0.0, 0.0, 1.0], rtol=0.0, atol=1e-9):
        reasons.append('last row')
    elif np.abs(k[:2]).max() > 1e6:
        reasons.append('out of range')
    try:
        K, size = conversions.camera_info_to_intrinsics(msg)
    except conversions.ConversionError as exc:
        assert reasons and any(reason in str(exc) for reason in reasons), (str(exc), reasons)
        return
    assert not reasons, f'accepted camera_info with problems {reasons}'
    assert size == (msg.width, msg.height)
    np.testing.assert_array_equal(K, k)
    geometry.check_intrinsics(K)


@pytest.mark.parametrize('k', [[1.0] * 8, [1.0] * 10, []])
def test_camera_info_without_nine_values(k):
    # Messages from the rosbags library are plain objects: k may have any length.
    msg = types.SimpleNamespace(width=4, height=4, k=k)
    with pytest.raises(conversions.ConversionError, match='expected 9'):
        conversions.camera_info_to_intrinsics(msg)


def _expected_pose_reasons(pose):
    position = [pose.position.x, pose.position.y, pose.position.z]
    quaternion = [pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]
    if not all(math.isfinite(v) for v in position + quaternion):
        return ['NaN or infinite']
    if max(abs(v) for v in position) > 1e9:
        return ['beyond']
    norm = math.sqrt(sum(v * v for v in quaternion))
    if not math.isfinite(norm) or norm < 1e-9:
        return ['cannot be normalised']
    return []


def _check_pose_matrix(matrix, pose):
    geometry.check_pose(matrix)
    np.testing.assert_array_equal(matrix[:3, 3], [pose.position.x, pose.position.y,
                                                  pose.position.z])
    quaternion = np.array([pose.orientation.x, pose.orientation.y, pose.orientation.z,
                           pose.orientation.w])
    back = geometry.quaternion_xyzw_from_matrix(matrix[:3, :3])
    unit = quaternion / np.linalg.norm(quaternion)
    assert min(np.abs(back - unit).max(), np.abs(back + unit).max()) < 1e-6


@FUZZ
@given(odometry_messages())
def test_odometry(msg):
    reasons = _expected_pose_reasons(msg.pose.pose)
    try:
        stamp, matrix = conversions.odometry_to_pose(msg)
    except conversions.ConversionError as exc:
        assert reasons and any(reason in str(exc) for reason in reasons), (str(exc), reasons)
        return
    assert not reasons, reasons
    assert stamp == msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
    _check_pose_matrix(matrix, msg.pose.pose)


@FUZZ
@given(path_messages())
def test_path(msg):
    reasons = [r for p in msg.poses for r in _expected_pose_reasons(p.pose)]
    try:
        matrices = conversions.path_to_poses(msg)
    except conversions.ConversionError as exc:
        assert reasons and any(reason in str(exc) for reason in reasons), (str(exc), reasons)
        return
    assert not reasons, reasons
    assert matrices.shape == (len(msg.poses), 4, 4)
    for matrix, stamped in zip(matrices, msg.poses):
        _check_pose_matrix(matrix, stamped.pose)


def reference_cloud_reasons(msg):
    fields = {f.name: f for f in msg.fields}
    reasons = []
    missing = {'x', 'y', 'z', 'rgb'} - set(fields)
    if missing:
        return ['lacks fields']
    for name in ('x', 'y', 'z', 'rgb'):
        field = fields[name]
        allowed = {PointField.FLOAT32}
        if name == 'rgb':
            allowed = {PointField.UINT32, PointField.FLOAT32, PointField.INT32}
        if field.datatype not in allowed:
            reasons.append('datatype')
        if field.count > 1:
            reasons.append('count')
        if field.offset + 4 > msg.point_step:
            reasons.append('point_step')
    if len(msg.data) < msg.width * msg.height * msg.point_step:
        reasons.append('bytes, expected')
    return reasons


@FUZZ
@given(cloud_messages())
def test_point_cloud(msg):
    reasons = reference_cloud_reasons(msg)
    try:
        points, colours = conversions.cloud_to_points(msg)
    except conversions.ConversionError as exc:
        assert reasons and any(reason in str(exc) for reason in reasons), (str(exc), reasons)
        return
    assert not reasons, reasons
    count = msg.width * msg.height
    assert points.shape == (count, 3) and points.dtype == np.float32
    assert colours.shape == (count, 3) and colours.dtype == np.uint8
    data = bytes(msg.data)
    order = '>' if msg.is_bigendian else '<'
    fields = {f.name: f for f in msg.fields}
    for i in range(count):
        base = i * msg.point_step
        for axis, name in enumerate('xyz'):
            offset = base + fields[name].offset
            expected = np.frombuffer(data[offset:offset + 4], order + 'f4')[0]
            np.testing.assert_array_equal(points[i, axis], expected)
        offset = base + fields['rgb'].offset
        packed = int(np.frombuffer(data[offset:offset + 4], order + 'u4')[0])
        assert tuple(colours[i]) == ((packed >> 16) & 255, (packed >> 8) & 255, packed & 255)


def test_point_cloud_round_trip_big_endian():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(7, 3)).astype(np.float32)
    colours = rng.integers(0, 256, (7, 3), dtype=np.uint8)
    msg = conversions.points_to_cloud(points, colours, 'odom', 0)
    swapped = np.frombuffer(bytes(msg.data), np.dtype('<u4')).byteswap().tobytes()
    msg.data, msg.is_bigendian = swapped, True
    back, back_colours = conversions.cloud_to_points(msg)
    np.testing.assert_array_equal(back, points)
    np.testing.assert_array_equal(back_colours, colours)


def draw_example(strategy):
    """Return one value of ``strategy`` (outside a @given test)."""
    found = []

    @settings(max_examples=1, database=None, deadline=None)
    @given(strategy)
    def keep(value):
        found.append(value)

    keep()
    return found[0]


# --- the node's callbacks -----------------------------------------------------------------

GOOD_SIZE = (32, 24)


def _good_frame_messages(node, index, stamp):
    """Camera info, odometry, colour and depth of one well-formed frame at ``stamp``."""
    K = geometry.intrinsics_from_fovy(80.0, *GOOD_SIZE)
    width, height = GOOD_SIZE
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = (np.arange(width) * 8 + index * 16) % 256
    rgb[..., 1] = np.arange(height)[:, None] * 10
    depth = np.full((height, width), 2.0, np.float32)
    camera = geometry.camera_pose_from_planar(0.4 * index, 0.0, 0.2 * index, 0.5)
    base = camera @ geometry.invert_pose(node.base_from_camera)
    return (conversions.intrinsics_to_camera_info(K, GOOD_SIZE, 'camera_optical_frame', stamp),
            conversions.pose_to_odometry(base, stamp, linear=(0.4, 0, 0)),
            conversions.rgb_to_image(rgb, 'camera_optical_frame', stamp),
            conversions.depth_to_image(depth, 'camera_optical_frame', stamp))


def _send_good_frames(node, count, start_index):
    for index in range(start_index, start_index + count):
        stamp = node.get_clock().now().nanoseconds
        info, odom, image, depth = _good_frame_messages(node, index, stamp)
        node._on_camera_info(info)
        node._on_odometry(odom)
        node._on_image(image)
        node._on_depth(depth)
        time.sleep(0.02)


@pytest.mark.ros
@pytest.mark.slow
def test_node_callbacks_survive_hostile_messages(ros):
    from mowm_ros.nodes.world_model_node import WorldModelNode

    node = WorldModelNode(context=ros.context, parameter_overrides=[
        Parameter('finetune', value=False), Parameter('sampler_steps', value=1),
        Parameter('horizon', value=2), Parameter('extrinsics_from_tf', value=False),
        Parameter('goal_time_budget_s', value=1.0), Parameter('goal_replan_period_s', value=0.0),
        Parameter('goal_sampler_steps', value=1)]).start()
    try:
        _send_good_frames(node, 3, 0)
        assert node.observer.wait_idle(timeout=20)
        assert node.model.frames_observed >= 2, node.rejected
        # Stamps up to 3 s before the clock (the good frames later are newer) or anywhere.
        near = st.integers(-3 * 10**9, 0).map(
            lambda d: divmod(node.get_clock().now().nanoseconds + d, 10**9))
        stamps = st.one_of(near, STAMPS)
        sizes = st.sampled_from([GOOD_SIZE, (8, 8), (1, 1), (640, 2), (0, 5)])

        @st.composite
        def decodable_frame(draw, stamp):
            """Camera info, odometry, colour, depth: well-formed messages, hostile values."""
            width, height = draw(st.sampled_from([GOOD_SIZE, (8, 8), (16, 9), (9, 16)]))
            if draw(st.booleans()):
                info = draw(camera_info_messages((width, height)))
            else:
                positive = st.floats(1e-300, 1e300)
                finite = st.floats(-1e300, 1e300)
                info = CameraInfo(k=[draw(positive), 0.0, draw(finite), 0.0, draw(positive),
                                     draw(finite), 0.0, 0.0, 1.0])
            info.width, info.height = width, height
            rng = np.random.default_rng(draw(st.integers(0, UINT32_MAX)))
            rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            encoding = draw(st.sampled_from(['32FC1', '16UC1']))
            if encoding == '32FC1':
                values = rng.choice(np.array(SPECIAL_FLOATS, np.float32), (height, width))
                depth = Image(height=height, width=width, encoding=encoding, step=4 * width,
                              data=values.astype('<f4').tobytes())
            else:
                values = rng.integers(0, 65536, (height, width)).astype('>u2')
                depth = Image(height=height, width=width, encoding=encoding, step=2 * width,
                              is_bigendian=1, data=values.tobytes())
            image = conversions.rgb_to_image(rgb, 'camera_optical_frame', 0,
                                             draw(st.sampled_from(['rgb8', 'bgr8'])))
            for msg in (info, depth, image):
                msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
            return [('camera_info', info), ('odom', draw(odometry_messages(stamp))),
                    ('image', image), ('depth', depth)]

        @st.composite
        def hostile(draw):
            size = draw(sizes)
            stamp = draw(stamps)
            if draw(st.integers(0, 2)) == 0:
                return draw(decodable_frame(draw(near)))
            kinds = {'image': lambda: image_messages(COLOUR_CHANNELS, stamp, size),
                     'depth': lambda: image_messages(DEPTH_ITEMSIZE, stamp, size),
                     'camera_info': lambda: camera_info_messages(size),
                     'odom': lambda: odometry_messages(stamp),
                     'plan': path_messages,
                     'goal_image': lambda: image_messages(COLOUR_CHANNELS, stamp, size)}
            names = draw(st.lists(st.sampled_from(sorted(kinds)), min_size=1, max_size=6))
            return [(name, draw(kinds[name]())) for name in names]

        callbacks = {'image': node._on_image, 'depth': node._on_depth,
                     'camera_info': node._on_camera_info, 'odom': node._on_odometry,
                     'plan': node._on_plan, 'goal_image': node._on_goal_image}

        @settings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(hostile())
        def feed(messages):
            for name, msg in messages:
                callbacks[name](msg)          # must never raise
            node._request_prediction()
            node._publish_diagnostics()

        feed()
        node._publish_memory()
        assert node.observer.wait_idle(timeout=30)
        assert node.predictor.wait_idle(timeout=60)
        assert node.goal_planner.wait_idle(timeout=60)
        assert sum(node.rejected.values()) > 0
        assert node.observer.failed == 0 and node.predictor.failed == 0, node.rejected
        assert node.goal_planner.failed == 0, node.rejected
        points, _ = node.model.spatial.points_and_colors()
        assert np.all(np.isfinite(points))
        # Far-future stamps (which would make all later input look old) are refused.
        future = (2**31 - 1, 0)
        node._on_odometry(draw_example(odometry_messages(future)))
        _, odom, image, depth = _good_frame_messages(node, 0, 0)
        odom.header.stamp.sec = image.header.stamp.sec = depth.header.stamp.sec = 2**31 - 1
        node._on_odometry(odom)
        node._on_image(image)
        node._on_depth(depth)
        assert node.rejected.get('stamp', 0) >= 1

        # Good frames are observed again afterwards.
        observed = node.model.frames_observed
        _send_good_frames(node, 6, 10)
        assert node.observer.wait_idle(timeout=30)
        assert node.model.frames_observed >= observed + 5, node.rejected
        node._request_prediction()
        assert node.predictor.wait_idle(timeout=60)
        assert node.predictor.failed == 0, node.rejected
    finally:
        node.close()
        node.destroy_node()
