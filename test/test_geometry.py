import math

from mowm_ros import geometry
import numpy as np
import pytest


def test_level_camera_looks_along_yaw_with_optical_axes():
    pose = geometry.camera_pose_from_planar(1.0, 2.0, math.pi / 2, height=0.5)
    forward, right, down = pose[:3, 2], pose[:3, 0], pose[:3, 1]
    np.testing.assert_allclose(forward, [0, 1, 0], atol=1e-12)   # yaw 90 deg: looks along +y
    np.testing.assert_allclose(right, [1, 0, 0], atol=1e-12)     # its right is +x
    np.testing.assert_allclose(down, [0, 0, -1], atol=1e-12)     # y down = -z up
    np.testing.assert_allclose(geometry.planar_pose(pose), [1.0, 2.0, math.pi / 2])


def test_relative_motion_is_in_the_earlier_body_frame():
    a = geometry.camera_pose_from_planar(0.0, 0.0, math.pi / 2, 0.3)
    b = geometry.camera_pose_from_planar(0.0, 1.0, math.pi, 0.3)   # 1 m ahead, turned left 90
    np.testing.assert_allclose(geometry.relative_motion(a, b), [1.0, 0.0, math.pi / 2],
                               atol=1e-9)
    c = geometry.camera_pose_from_planar(-1.0, 0.0, math.pi / 2, 0.3)  # 1 m to a's left
    np.testing.assert_allclose(geometry.relative_motion(a, c)[:2], [0.0, 1.0], atol=1e-9)


def test_relative_motion_wraps_yaw():
    a = geometry.camera_pose_from_planar(0, 0, math.pi - 0.1, 0.3)
    b = geometry.camera_pose_from_planar(0, 0, -math.pi + 0.1, 0.3)
    assert geometry.relative_motion(a, b)[2] == pytest.approx(0.2)


def test_absolute_features_relative_to_origin():
    origin = geometry.make_pose(geometry.transforms3d.euler.euler2mat(0, 0, math.pi / 2),
                                [5.0, 5.0, 0.0])
    pose = geometry.camera_pose_from_planar(5.0, 7.0, math.pi / 2, 0.3)
    features = geometry.absolute_pose_features(pose, origin)
    np.testing.assert_allclose(features, [2.0, 0.0, 1.0, 0.0], atol=1e-9)


def test_invert_pose_batched():
    rng = np.random.default_rng(0)
    poses = np.stack([geometry.camera_pose_from_planar(*rng.normal(size=3), 0.2)
                      for _ in range(5)])
    np.testing.assert_allclose(geometry.invert_pose(poses) @ poses, np.broadcast_to(
        np.eye(4), poses.shape), atol=1e-12)


def test_unproject_then_project_returns_the_pixels():
    K = geometry.intrinsics_from_fovy(80.0, 64, 48)
    pose = geometry.camera_pose_from_planar(0.3, -0.2, 0.7, 0.5)
    depth = np.linspace(0.5, 4.0, 64 * 48, dtype=np.float32).reshape(48, 64)
    depth[0, 0] = np.nan
    depth[1, 1] = 0.0
    points, valid = geometry.unproject_depth(depth, K, pose)
    assert valid.sum() == 64 * 48 - 2 and len(points) == valid.sum()
    uv, z = geometry.project_points(points, K, pose)
    v, u = np.nonzero(valid)
    np.testing.assert_allclose(uv, np.stack([u, v], -1), atol=1e-6)
    np.testing.assert_allclose(z, depth[valid], rtol=1e-6)


def test_scale_intrinsics_keeps_pixel_centres():
    K = geometry.intrinsics_from_fovy(80.0, 640, 480)
    small = geometry.scale_intrinsics(K, (640, 480), (64, 48))
    np.testing.assert_allclose(small, geometry.intrinsics_from_fovy(80.0, 64, 48))


def test_quaternions_and_interpolation():
    a = geometry.camera_pose_from_planar(0, 0, 0.0, 0.3)
    b = geometry.camera_pose_from_planar(2, 0, 1.0, 0.3)
    mid = geometry.interpolate_pose(a, b, 0.5)
    np.testing.assert_allclose(geometry.planar_pose(mid), [1.0, 0.0, 0.5], atol=1e-9)
    q = geometry.quaternion_xyzw_from_matrix(b[:3, :3])
    np.testing.assert_allclose(geometry.matrix_from_quaternion_xyzw(q), b[:3, :3], atol=1e-12)


@pytest.mark.parametrize('bad, reason', [
    (np.full((4, 4), np.nan), 'NaN'),
    (np.eye(3), 'must be 4x4'),
    (np.diag([2.0, 1.0, 1.0, 1.0]), 'orthonormal'),
])
def test_check_pose_names_the_problem(bad, reason):
    with pytest.raises(geometry.GeometryError, match=reason):
        geometry.check_pose(bad)


def test_zero_quaternion_is_rejected():
    with pytest.raises(geometry.GeometryError, match='cannot be normalised'):
        geometry.matrix_from_quaternion_xyzw([0.0, 0.0, 0.0, 0.0])
