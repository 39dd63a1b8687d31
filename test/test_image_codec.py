from types import SimpleNamespace

from mowm_ros import geometry, image_codec
import numpy as np
import pytest


def image(height, width, encoding, step, data, is_bigendian=0):
    """Any object with an Image's fields will do (rclpy, rosbags, or this)."""
    return SimpleNamespace(height=height, width=width, encoding=encoding, step=step,
                           data=data, is_bigendian=is_bigendian)


def test_colour_encodings_decode_to_rgb():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for encoding in ('rgb8', 'bgr8'):
        data, step = image_codec.encode_rgb(rgb, encoding)
        assert step == 21
        decoded = image_codec.decode_rgb(image(5, 7, encoding, step, data))
        np.testing.assert_array_equal(decoded, rgb)
    rgba = np.concatenate([rgb, np.full((5, 7, 1), 9, np.uint8)], axis=2)
    np.testing.assert_array_equal(
        image_codec.decode_rgb(image(5, 7, 'rgba8', 28, rgba.tobytes())), rgb)
    bgra = np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]])
    np.testing.assert_array_equal(
        image_codec.decode_rgb(image(5, 7, 'bgra8', 28, bgra.tobytes())), rgb)
    mono = image_codec.decode_rgb(image(2, 3, 'mono8', 4, bytes(range(8))))
    np.testing.assert_array_equal(mono[1, :, 0], [4, 5, 6])   # row padding skipped
    assert mono.shape == (2, 3, 3)


def test_data_as_numpy_array_like_rosbags():
    rgb = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    decoded = image_codec.decode_rgb(image(2, 2, 'rgb8', 6, rgb.reshape(-1).copy()))
    np.testing.assert_array_equal(decoded, rgb)


def test_depth_encodings_and_byte_order():
    depth = np.array([[0.5, np.nan], [2.25, 10.0]], dtype=np.float32)
    for encoding in ('32FC1', '16UC1'):
        data, step = image_codec.encode_depth(depth, encoding)
        back = image_codec.decode_depth(image(2, 2, encoding, step, data))
        np.testing.assert_allclose(back, depth, atol=1e-3, equal_nan=True)
    big = np.array([[1000, 0], [2500, 65535]], dtype='>u2')
    back = image_codec.decode_depth(image(2, 2, '16UC1', 4, big.tobytes(), is_bigendian=1))
    np.testing.assert_allclose(back, [[1.0, np.nan], [2.5, 65.535]], equal_nan=True)


@pytest.mark.parametrize('msg, reason', [
    (image(2, 2, 'yuv422', 4, bytes(8)), "unsupported colour encoding 'yuv422'"),
    (image(2, 2, 'rgb8', 6, bytes(7)), 'expected at least'),
    (image(2, 2, 'rgb8', 3, bytes(12)), 'step 3 is smaller'),
    (image(0, 2, 'rgb8', 6, b''), 'zero size'),
    (image(9000, 2, 'rgb8', 6, b''), 'exceeds'),
])
def test_bad_colour_images_are_rejected_with_the_reason(msg, reason):
    with pytest.raises(image_codec.CodecError, match=reason):
        image_codec.decode_rgb(msg)


def test_bad_depth_encoding_is_named():
    with pytest.raises(image_codec.CodecError, match="unsupported depth encoding '8UC1'"):
        image_codec.decode_depth(image(2, 2, '8UC1', 2, bytes(4)))
    with pytest.raises(image_codec.CodecError, match='cannot encode'):
        image_codec.encode_depth(np.ones((2, 2)), '8UC1')


def test_intrinsics_and_pose_decoding():
    K = geometry.intrinsics_from_fovy(80.0, 64, 48)
    info = SimpleNamespace(k=K.reshape(-1), width=64, height=48)
    K2, size = image_codec.decode_intrinsics(info)
    np.testing.assert_allclose(K2, K)
    assert size == (64, 48)
    with pytest.raises(image_codec.CodecError, match='expected 9'):
        image_codec.decode_intrinsics(SimpleNamespace(k=[1.0] * 4, width=64, height=48))
    with pytest.raises(image_codec.CodecError, match='focal lengths'):
        image_codec.decode_intrinsics(SimpleNamespace(k=np.zeros(9), width=64, height=48))

    def pose(x, y, z, qx, qy, qz, qw):
        return SimpleNamespace(position=SimpleNamespace(x=x, y=y, z=z),
                               orientation=SimpleNamespace(x=qx, y=qy, z=qz, w=qw))

    matrix = image_codec.decode_pose(pose(1.0, 2.0, 3.0, 0.0, 0.0, np.sin(0.25), np.cos(0.25)))
    np.testing.assert_allclose(matrix[:3, 3], [1, 2, 3])
    np.testing.assert_allclose(geometry.planar_pose(matrix @ geometry.make_pose(
        geometry.R_BODY_FROM_OPTICAL, np.zeros(3)))[2], 0.5)
    with pytest.raises(image_codec.CodecError, match='NaN'):
        image_codec.decode_pose(pose(np.nan, 0, 0, 0, 0, 0, 1))
    with pytest.raises(image_codec.CodecError, match='normalised'):
        image_codec.decode_pose(pose(0, 0, 0, 0, 0, 0, 0))
    assert image_codec.stamp_to_ns(SimpleNamespace(sec=3, nanosec=5)) == 3_000_000_005
