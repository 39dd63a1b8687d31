import math

from mowm_ros import geometry
from mowm_ros.nodes import conversions
from nav_msgs.msg import Odometry
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image


def test_rgb_round_trip_and_bgr_mono():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for encoding in ('rgb8', 'bgr8'):
        msg = conversions.rgb_to_image(rgb, 'cam', 123, encoding=encoding)
        assert msg.step == 21 and msg.header.frame_id == 'cam'
        np.testing.assert_array_equal(conversions.image_to_rgb(msg), rgb)
    mono = Image(height=2, width=3, encoding='mono8', step=4, data=bytes(range(8)))
    out = conversions.image_to_rgb(mono)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out[1, :, 0], [4, 5, 6])   # row padding skipped


def test_depth_encodings():
    depth = np.array([[0.5, np.nan], [2.25, 10.0]], dtype=np.float32)
    for encoding in ('32FC1', '16UC1'):
        back = conversions.image_to_depth(conversions.depth_to_image(depth, 'cam', 0, encoding))
        np.testing.assert_allclose(back, depth, atol=1e-3, equal_nan=True)


@pytest.mark.parametrize('msg, reason', [
    (Image(height=2, width=2, encoding='yuv422', step=4, data=bytes(8)), 'unsupported'),
    (Image(height=2, width=2, encoding='rgb8', step=6, data=bytes(7)), 'expected at least'),
    (Image(height=2, width=2, encoding='rgb8', step=3, data=bytes(12)), 'step 3 is smaller'),
    (Image(height=0, width=2, encoding='rgb8', step=6, data=b''), 'zero size'),
])
def test_bad_images_are_rejected_with_the_reason(msg, reason):
    with pytest.raises(conversions.ConversionError, match=reason):
        conversions.image_to_rgb(msg)


def test_camera_info_round_trip_and_rejection():
    K = geometry.intrinsics_from_fovy(80.0, 64, 48)
    msg = conversions.intrinsics_to_camera_info(K, (64, 48), 'cam', 5)
    K2, size = conversions.camera_info_to_intrinsics(msg)
    np.testing.assert_allclose(K2, K)
    assert size == (64, 48)
    with pytest.raises(conversions.ConversionError, match='zero size'):
        conversions.camera_info_to_intrinsics(CameraInfo(k=K.ravel().tolist()))


def test_odometry_round_trip_and_nan():
    pose = geometry.camera_pose_from_planar(1.0, -2.0, 0.3, 0.5)
    msg = conversions.pose_to_odometry(pose, 3_500_000_001)
    stamp, back = conversions.odometry_to_pose(msg)
    assert stamp == 3_500_000_001
    np.testing.assert_allclose(back, pose, atol=1e-12)
    bad = Odometry()
    bad.pose.pose.position.x = math.nan
    with pytest.raises(conversions.ConversionError, match='NaN'):
        conversions.odometry_to_pose(bad)
    zero = Odometry()
    zero.pose.pose.orientation.w = 0.0
    with pytest.raises(conversions.ConversionError, match='normalised'):
        conversions.odometry_to_pose(zero)


def test_point_cloud_round_trip():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(100, 3)).astype(np.float32)
    colors = rng.integers(0, 256, (100, 3), dtype=np.uint8)
    msg = conversions.points_to_cloud(points, colors, 'odom', 0)
    p2, c2 = conversions.cloud_to_points(msg)
    np.testing.assert_array_equal(p2, points)
    np.testing.assert_array_equal(c2, colors)


def test_path_round_trip():
    poses = np.stack([geometry.camera_pose_from_planar(i, 0, 0.1 * i, 0) for i in range(3)])
    msg = conversions.poses_to_path(poses, 'odom', [1, 2, 3])
    np.testing.assert_allclose(conversions.path_to_poses(msg), poses, atol=1e-12)
