from mowm_ros import geometry
from mowm_ros.render import render_points
import numpy as np
import pytest


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


def _reference_render(points, colours, pose, K, width, height, point_size, max_radius, near):
    """Render with a per-point loop: each pixel keeps its nearest point (lowest index on ties)."""
    depth = np.full((height, width), np.inf)
    source = np.full((height, width), -1)
    uv, z = geometry.project_points(points.astype(np.float64), K, pose)
    for index in range(len(points)):
        if not z[index] > near:
            continue
        u, v = int(np.round(uv[index, 0])), int(np.round(uv[index, 1]))
        radius = 0
        if point_size > 0:
            radius = int(min(max(np.floor(0.5 * K[0, 0] * point_size / z[index]), 0),
                             max_radius))
        for pv in range(v - radius, v + radius + 1):
            for pu in range(u - radius, u + radius + 1):
                if 0 <= pu < width and 0 <= pv < height and z[index] < depth[pv, pu]:
                    depth[pv, pu], source[pv, pu] = z[index], index
    return depth, source


def test_matches_a_per_point_reference_z_buffer_with_splats():
    K = geometry.intrinsics_from_fovy(70.0, 20, 15)
    rng = np.random.default_rng(4)
    for trial in range(4):
        pose = geometry.camera_pose_from_planar(*rng.uniform(-1, 1, 2), rng.uniform(-3, 3), 0.4)
        points = pose[:3, 3] + rng.uniform(-4.0, 4.0, (400, 3))
        colours = rng.integers(0, 256, (400, 3), dtype=np.uint8)
        view = render_points(points, colours, pose, K, 20, 15, point_size=0.4, max_radius=3)
        depth, source = _reference_render(points, colours, pose, K, 20, 15, 0.4, 3, 0.05)
        np.testing.assert_array_equal(view.mask, source >= 0)
        np.testing.assert_allclose(view.depth[view.mask], depth[view.mask], rtol=1e-5)
        np.testing.assert_array_equal(view.rgb[view.mask], colours[source[view.mask]])
        float32_view = render_points(points.astype(np.float32), colours, pose, K, 20, 15,
                                     point_size=0.4, max_radius=3)
        assert np.mean(float32_view.rgb == view.rgb) > 0.99


def test_far_plane_and_bad_shapes():
    K = geometry.intrinsics_from_fovy(80.0, 16, 12)
    pose = geometry.camera_pose_from_planar(0.0, 0.0, 0.0, 0.4)
    far_points, far_colours = _wall(3.0, (0, 0, 255), K, pose)
    assert render_points(far_points, far_colours, pose, K, 16, 12, far=2.0).coverage == 0.0
    assert render_points(np.zeros((0, 3)), np.zeros((0, 3), np.uint8), pose, K, 16,
                         12).coverage == 0.0
    with pytest.raises(ValueError, match='must both be'):
        render_points(far_points, far_colours[:-1], pose, K, 16, 12)
