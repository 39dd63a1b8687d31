from mowm_ros import geometry
from mowm_ros.render import render_points
import numpy as np


def _wall(distance, colour, K, pose, size=(16, 12)):
    depth = np.full(size[::-1], distance, np.float32)
    points, _ = geometry.unproject_depth(depth, K, pose)
    return points, np.tile(np.array(colour, np.uint8), (len(points), 1))


def test_rendering_a_frame_at_its_own_pose_reproduces_it():
    K = geometry.intrinsics_from_fovy(80.0, 16, 12)
    pose = geometry.camera_pose_from_planar(0.5, 0.2, 0.3, 0.4)
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 3.0, (12, 16)).astype(np.float32)
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    points, valid = geometry.unproject_depth(depth, K, pose)
    view = render_points(points, rgb[valid], pose, K, 16, 12)
    assert view.mask.all()
    np.testing.assert_array_equal(view.rgb, rgb)
    np.testing.assert_allclose(view.depth, depth, rtol=1e-5)


def test_nearer_surface_occludes_farther_one_regardless_of_order():
    K = geometry.intrinsics_from_fovy(80.0, 16, 12)
    pose = geometry.camera_pose_from_planar(0.0, 0.0, 0.0, 0.4)
    near_points, near_colours = _wall(1.0, (255, 0, 0), K, pose)
    far_points, far_colours = _wall(3.0, (0, 0, 255), K, pose)
    for order in (1, -1):
        points = np.concatenate([near_points, far_points][::order])
        colours = np.concatenate([near_colours, far_colours][::order])
        view = render_points(points, colours, pose, K, 16, 12)
        assert (view.rgb[..., 0] == 255).all() and np.allclose(view.depth, 1.0)


def test_splats_fill_holes_of_a_sparse_cloud_and_empty_pixels_are_nan():
    K = geometry.intrinsics_from_fovy(80.0, 32, 24)
    pose = geometry.camera_pose_from_planar(0.0, 0.0, 0.0, 0.4)
    depth = np.full((24, 32), 1.0, np.float32)
    points, _ = geometry.unproject_depth(depth, K, pose)
    sparse = points[::4]
    colours = np.full((len(sparse), 3), 200, np.uint8)
    single = render_points(sparse, colours, pose, K, 32, 24)
    splatted = render_points(sparse, colours, pose, K, 32, 24, point_size=0.3)
    assert single.coverage < 0.3 < 0.9 < splatted.coverage
    assert np.isnan(single.depth[~single.mask]).all()
    behind = render_points(points, np.zeros_like(points, np.uint8),
                           geometry.camera_pose_from_planar(0.0, 0.0, np.pi, 0.4), K, 32, 24)
    assert behind.coverage == 0.0
