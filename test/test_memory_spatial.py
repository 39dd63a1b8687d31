import threading

from memory_scenes import Box, BoxScene, psnr, room_frames, room_poses, room_scene, tour_poses
from mowm_ros import geometry
from mowm_ros.memory import voxels
from mowm_ros.memory.spatial import FREE, OCCUPIED, SpatialMemory, SpatialMemoryConfig, \
    UNKNOWN
import numpy as np
import pytest

SECOND = 1_000_000_000


def integrate_all(memory, frames, start=1):
    for index, frame in enumerate(frames):
        memory.integrate(frame.rgb, frame.depth, frame.pose, frame.K, (start + index) * SECOND)


def observed(frame, memory):
    """Pixels whose depth the memory was allowed to keep (valid and within max_depth)."""
    return np.isfinite(frame.depth) & (frame.depth <= memory.config.max_depth)


def test_rendering_a_single_integrated_frame_reproduces_it_exactly():
    # Bound: >= 40 dB on covered pixels and >= 99 % coverage (exact scene, 64x64, 1 cm
    # voxels: each pixel's sample keeps its own voxel, so the render is the frame itself).
    frame = room_frames(room_poses(1, seed=3))[0]
    memory = SpatialMemory(SpatialMemoryConfig(voxel_size=0.01))
    integrate_all(memory, [frame])
    view = memory.render(frame.pose, frame.K, 64, 64)
    valid = observed(frame, memory)
    covered = view.mask & valid
    assert covered.sum() >= 0.99 * valid.sum()
    assert psnr(view.rgb, frame.rgb, covered) >= 40.0
    np.testing.assert_allclose(view.depth[covered], frame.depth[covered], atol=0.01)


@pytest.mark.parametrize('voxel, worst_db, mean_db', [(0.01, 25.0, 32.0), (0.05, 21.0, 23.0)])
def test_rendering_at_integrated_poses_of_a_trajectory_reproduces_the_frames(
        voxel, worst_db, mean_db):
    # Bounds, exact room scene at 64x64, 8 overlapping frames integrated, each re-rendered at
    # its own pose, PSNR on covered pixels: 1 cm voxels >= 25 dB each and >= 32 dB on average
    # (measured 27.7 / 35.4); default 5 cm voxels >= 21 / 23 dB (measured 23.7 / 25.1).
    # What remains is point sampling: at grazing angles and silhouettes a sample from
    # another view that falls in a pixel's footprint is nearer and wins that pixel.
    frames = room_frames(room_poses(8, seed=1))
    memory = SpatialMemory(SpatialMemoryConfig(voxel_size=voxel))
    integrate_all(memory, frames)
    scores = []
    for frame in frames:
        view = memory.render(frame.pose, frame.K, 64, 64)
        valid = observed(frame, memory)
        covered = view.mask & valid
        assert covered.sum() >= 0.9 * valid.sum()
        scores.append(psnr(view.rgb, frame.rgb, covered))
    assert min(scores) >= worst_db
    assert np.mean(scores) >= mean_db


def test_seen_after_renders_only_the_points_last_seen_since_that_stamp():
    # With drifting odometry old points lie elsewhere: render can leave them out by stamp.
    frames = room_frames(room_poses(8, seed=1))
    memory = SpatialMemory()
    integrate_all(memory, frames)                     # stamps 1 s .. 8 s
    first = frames[0]
    everything = memory.render(first.pose, first.K, 64, 64)
    assert everything.coverage > 0.5
    same = memory.render(first.pose, first.K, 64, 64, seen_after=1 * SECOND)
    np.testing.assert_array_equal(same.rgb, everything.rgb)
    recent = SpatialMemory()
    integrate_all(recent, frames[6:], start=7)
    only_recent = memory.render(first.pose, first.K, 64, 64, seen_after=7 * SECOND)
    # Exactly the voxels the last two frames saw (seen again later or not at all earlier).
    reference = recent.render(first.pose, first.K, 64, 64)
    assert only_recent.coverage < everything.coverage
    np.testing.assert_array_equal(only_recent.mask, reference.mask)
    view = memory.view()
    np.testing.assert_array_equal(
        view.render(first.pose, first.K, 64, 64, seen_after=7 * SECOND).mask, reference.mask)
    assert not memory.render(first.pose, first.K, 64, 64, seen_after=9 * SECOND).mask.any()


def test_seen_after_builds_the_occupancy_grid_from_the_points_seen_since():
    frames = room_frames(room_poses(8, seed=1))
    memory = SpatialMemory()
    integrate_all(memory, frames)                     # stamps 1 s .. 8 s
    recent = SpatialMemory()
    integrate_all(recent, frames[6:], start=7)
    bounds = (-0.5, -0.5, 6.5, 5.5)
    everything = memory.occupancy_grid(resolution=0.1, bounds=bounds)
    trusted = memory.occupancy_grid(resolution=0.1, bounds=bounds, seen_after=7 * SECOND)
    reference = recent.occupancy_grid(resolution=0.1, bounds=bounds)
    known = (trusted.cells != UNKNOWN).sum()
    assert 0 < known < (everything.cells != UNKNOWN).sum()
    # The voxels the last two frames saw (their means may hold older samples too).
    agree = (trusted.cells == reference.cells).mean()
    assert agree >= 0.99, agree


def test_nearer_surface_occludes_points_remembered_behind_it():
    wall = Box((4.0, -3.0, 0.0), (4.2, 3.0, 2.5), (200, 30, 30))
    floor = Box((-1.0, -3.0, -0.1), (5.0, 3.0, 0.0), (120, 120, 120))
    pillar = Box((2.0, -0.4, 0.0), (2.3, 0.4, 2.5), (30, 30, 220))
    pose = geometry.camera_pose_from_planar(0.0, 0.0, 0.0, 0.5)
    K = geometry.intrinsics_from_fovy(80.0, 64, 64)
    empty_room = BoxScene([wall, floor], checker_contrast=0.0).render(pose, K, 64, 64)
    with_pillar = BoxScene([wall, floor, pillar], checker_contrast=0.0).render(pose, K, 64, 64)

    memory = SpatialMemory(SpatialMemoryConfig(voxel_size=0.02))
    # The wall behind the pillar is remembered (first frame), then the pillar appears.
    integrate_all(memory, [empty_room, with_pillar])
    view = memory.render(pose, K, 64, 64)
    # Pillar pixels with the wall behind them.
    pillar_pixels = np.all(with_pillar.rgb == (30, 30, 220), axis=2) \
        & np.all(empty_room.rgb == (200, 30, 30), axis=2)
    assert pillar_pixels.sum() > 100
    assert np.all(view.rgb[pillar_pixels] == (30, 30, 220))
    assert np.all(np.abs(view.depth[pillar_pixels] - 2.0) < 0.05)
    # From the empty room's memory alone the same pixels show the wall.
    wall_only = SpatialMemory(SpatialMemoryConfig(voxel_size=0.02))
    integrate_all(wall_only, [empty_room])
    assert np.all(wall_only.render(pose, K, 64, 64).rgb[pillar_pixels] == (200, 30, 30))


def wall_frame(x, seen_from_x, size=32):
    """Render a frontal wall at ``x`` seen from (seen_from_x, 0) looking along +x."""
    scene = BoxScene([Box((x, -20.0, -20.0), (x + 0.1, 20.0, 20.0), (90, 90, 90))],
                     checker_contrast=0.0)
    pose = geometry.camera_pose_from_planar(seen_from_x, 0.0, 0.0, 0.0)
    return scene.render(pose, geometry.intrinsics_from_fovy(60.0, size, size), size, size)


def test_eviction_keeps_the_cap_and_drops_old_far_points_first():
    config = SpatialMemoryConfig(voxel_size=0.02, max_points=1500, eviction_batch_fraction=0.1,
                                 max_depth=3.0)
    memory = SpatialMemory(config)
    old_far = wall_frame(2.0, 0.0)        # seen first, the robot then drives away
    new_near = [wall_frame(32.0 + 0.3 * i, 30.0 + 0.3 * i) for i in range(6)]
    integrate_all(memory, [old_far])
    assert len(memory) == 32 * 32
    evicted = 0
    for index, frame in enumerate(new_near):
        result = memory.integrate(frame.rgb, frame.depth, frame.pose, frame.K,
                                  (10 + index) * SECOND)
        evicted += result.evicted
        assert len(memory) <= config.max_points
    assert evicted > 0 and memory.stats()['evicted'] == evicted
    xyz, _ = memory.points_and_colors()
    # Everything from the old, far wall went before any point of the recent walls.
    assert not np.any(xyz[:, 0] < 10.0)
    assert len(memory) <= config.max_points - int(0.1 * config.max_points) + 32 * 32


def test_eviction_score_combines_age_and_distance():
    memory = SpatialMemory(SpatialMemoryConfig(eviction_age_scale_s=60.0,
                                               eviction_distance_scale_m=10.0))
    frame = wall_frame(2.0, 0.0, size=8)
    memory.integrate(frame.rgb, frame.depth, frame.pose, frame.K, 120 * SECOND)
    xyz = np.array([[1.0, 0.0, 0.0], [20.0, 0.0, 0.0], [1.0, 0.0, 0.0], [20.0, 0.0, 0.0]],
                   np.float32)
    last_seen = np.array([120, 120, 0, 0]) * SECOND
    near_new, far_new, near_old, far_old = memory.eviction_scores(xyz, last_seen)
    assert near_new < far_new < far_old and near_new < near_old < far_old
    assert near_old == pytest.approx(2.0 + 1.0 / 10.0)


def test_occupancy_grid_marks_walls_boxes_floor_and_unknown():
    scene = room_scene()
    K = geometry.intrinsics_from_fovy(80.0, 96, 72)
    memory = SpatialMemory(SpatialMemoryConfig(voxel_size=0.05))
    for index in range(16):
        for x, y in ((1.5, 1.5), (4.5, 3.5)):
            pose = geometry.camera_pose_from_planar(x, y, index * np.pi / 8, 1.2)
            frame = scene.render(pose, K, 96, 72)
            memory.integrate(frame.rgb, frame.depth, pose, K, (index + 1) * SECOND)
    grid = memory.occupancy_grid(resolution=0.1, z_min=0.1, z_max=1.5)
    assert grid.data.dtype == np.int8 and grid.data.shape == (grid.width * grid.height,)
    assert set(np.unique(grid.data)) <= {FREE, OCCUPIED, UNKNOWN}
    cells = grid.cells
    state = grid.value_at

    def wall_at(x, y, axis):
        """Occupied within one cell of (x, y) across the wall (faces fall on cell borders)."""
        step = np.eye(2)[axis] * grid.resolution
        return any(state(*((x, y) + k * step)) == OCCUPIED for k in (-1, 0, 1))

    walls = [(0.0, y, 0) for y in np.arange(0.25, 5.0, 0.5)] + \
        [(6.0, y, 0) for y in np.arange(0.25, 5.0, 0.5)] + \
        [(x, 0.0, 1) for x in np.arange(0.25, 6.0, 0.5)] + \
        [(x, 5.0, 1) for x in np.arange(0.25, 6.0, 0.5)]
    assert np.mean([wall_at(*wall) for wall in walls]) >= 0.9
    for box in scene.boxes[5:]:
        (row0, col0), (row1, col1) = grid.cell_of(*box.minimum[:2]), grid.cell_of(*box.maximum[:2])
        footprint = cells[row0:row1 + 1, col0:col1 + 1]
        assert (footprint == OCCUPIED).sum() >= 3 and not np.any(footprint[1:-1, 1:-1] == FREE)
    assert state(3.0, 2.5) in (FREE, OCCUPIED)
    free_share = np.mean(cells[grid.cell_of(1.0, 1.0)[0]:grid.cell_of(5.0, 4.0)[0],
                               grid.cell_of(1.0, 1.0)[1]:grid.cell_of(5.0, 4.0)[1]] == FREE)
    assert free_share > 0.5
    fixed = memory.occupancy_grid(resolution=0.5, bounds=(-2.0, -2.0, 8.0, 7.0))
    assert (fixed.origin_x, fixed.origin_y, fixed.width, fixed.height) == (-2.0, -2.0, 21, 19)
    # The floor extends 1 m beyond the walls, but no camera saw it: unknown there.
    assert fixed.value_at(-0.6, 2.5) == UNKNOWN and fixed.value_at(3.0, 2.5) == FREE


@pytest.mark.parametrize('change, error', [
    (lambda f: dict(f, rgb=f['rgb'][:, :-1]), 'does not match'),
    (lambda f: dict(f, rgb=f['rgb'].astype(np.float32)), 'uint8'),
    (lambda f: dict(f, depth=np.zeros(f['depth'].shape, np.uint16)), 'float'),
    (lambda f: dict(f, pose=np.full((4, 4), np.nan)), 'NaN'),
    (lambda f: dict(f, pose=2.0 * f['pose']), 'orthonormal'),
    (lambda f: dict(f, K=np.zeros((3, 3))), 'focal'),
    (lambda f: dict(f, K=np.eye(4)), '3x3'),
    (lambda f: dict(f, stamp=-5), 'stamp'),
    (lambda f: dict(f, stamp=1.5), 'stamp'),
])
def test_bad_input_is_rejected_and_leaves_the_memory_unchanged(change, error):
    frames = room_frames(room_poses(2, seed=5))
    memory = SpatialMemory()
    integrate_all(memory, frames[:1])
    before = memory.to_arrays()
    good = {'rgb': frames[1].rgb, 'depth': frames[1].depth, 'pose': frames[1].pose,
            'K': frames[1].K, 'stamp': 5 * SECOND}
    with pytest.raises(ValueError, match=error):
        memory.integrate(**change(good))
    after = memory.to_arrays()
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])
    memory.integrate(**good)
    assert len(memory) > len(before['keys'])


def test_integrate_and_render_run_concurrently_and_see_whole_frames():
    frames = room_frames(room_poses(12, seed=2))
    config = SpatialMemoryConfig(voxel_size=0.03, merge_threshold=500, max_points=6000)
    query = frames[0]

    def fingerprint(view):
        return view.rgb.tobytes() + view.depth.tobytes()

    # Every state a render may observe: the memory after each whole number of frames.
    sequential = SpatialMemory(config)
    whole_frame_states = {fingerprint(sequential.render(query.pose, query.K, 64, 64))}
    for index, frame in enumerate(frames):
        sequential.integrate(frame.rgb, frame.depth, frame.pose, frame.K, (index + 1) * SECOND)
        whole_frame_states.add(fingerprint(sequential.render(query.pose, query.K, 64, 64)))

    memory = SpatialMemory(config)
    errors, renders = [], []

    def integrate():
        try:
            integrate_all(memory, frames)
        except Exception as exc:  # noqa: B902 - reported by the main thread
            errors.append(exc)

    def render():
        try:
            while writer.is_alive() or not renders:
                renders.append(fingerprint(memory.render(query.pose, query.K, 64, 64)))
        except Exception as exc:  # noqa: B902 - reported by the main thread
            errors.append(exc)

    writer = threading.Thread(target=integrate)
    readers = [threading.Thread(target=render) for _ in range(2)]
    writer.start()
    for reader in readers:
        reader.start()
    writer.join()
    for reader in readers:
        reader.join()
    assert not errors
    assert renders and set(renders) <= whole_frame_states
    assert memory.stats()['evicted'] > 0
    for name, value in sequential.to_arrays().items():
        np.testing.assert_array_equal(memory.to_arrays()[name], value)


def test_recent_table_merging_does_not_change_the_result():
    frames = room_frames(room_poses(6, seed=4))
    eager = SpatialMemory(SpatialMemoryConfig(merge_threshold=1))
    lazy = SpatialMemory(SpatialMemoryConfig(merge_threshold=10_000_000))
    integrate_all(eager, frames)
    integrate_all(lazy, frames)
    assert lazy.stats()['recent_points'] == len(lazy) and eager.stats()['recent_points'] == 0
    for name, value in eager.to_arrays().items():
        np.testing.assert_array_equal(lazy.to_arrays()[name], value)
    for frame in frames[:2]:
        a, b = eager.render(frame.pose, frame.K, 64, 64), lazy.render(frame.pose, frame.K, 64, 64)
        np.testing.assert_array_equal(a.rgb, b.rgb)


@pytest.mark.parametrize('merge_threshold', [1, 10_000_000])
def test_a_view_renders_the_memory_as_it_was_whatever_is_integrated_later(merge_threshold):
    frames = room_frames(room_poses(6, seed=4))
    memory = SpatialMemory(SpatialMemoryConfig(merge_threshold=merge_threshold))
    integrate_all(memory, frames[:3])
    view = memory.view()
    before = [memory.render(f.pose, f.K, 64, 64) for f in frames]
    # Later frames update the points the view holds (in place) and add new ones.
    integrate_all(memory, frames[3:] + frames[:3], start=4)
    assert len(view) < len(memory)
    changed = 0
    for frame, then in zip(frames, before):
        frozen = view.render(frame.pose, frame.K, 64, 64)
        np.testing.assert_array_equal(frozen.rgb, then.rgb)
        np.testing.assert_array_equal(frozen.mask, then.mask)
        changed += int(np.any(memory.render(frame.pose, frame.K, 64, 64).rgb != then.rgb))
    assert changed >= 3, 'the later frames did not change the memory: the test shows nothing'


def test_exports_round_trip_and_reset():
    frames = room_frames(room_poses(3, seed=6))
    memory = SpatialMemory(SpatialMemoryConfig(voxel_size=0.04))
    integrate_all(memory, frames)
    xyz, rgb = memory.points_and_colors()
    assert xyz.dtype == np.float32 and rgb.dtype == np.uint8
    assert xyz.shape == rgb.shape == (len(memory), 3)
    cloud = memory.to_open3d()
    assert len(cloud.point.positions) == len(memory)

    restored = SpatialMemory.from_arrays(memory.to_arrays())
    assert restored.config.voxel_size == 0.04 and len(restored) == len(memory)
    np.testing.assert_array_equal(restored.robot_position, memory.robot_position)
    view, again = (m.render(frames[0].pose, frames[0].K, 64, 64) for m in (memory, restored))
    np.testing.assert_array_equal(view.rgb, again.rgb)
    with pytest.raises(ValueError, match='voxel_size'):
        SpatialMemory.from_arrays(memory.to_arrays(), SpatialMemoryConfig(voxel_size=0.05))
    capped = SpatialMemory.from_arrays(memory.to_arrays(),
                                       SpatialMemoryConfig(voxel_size=0.04, max_points=100))
    assert len(capped) <= 100
    broken = memory.to_arrays()
    broken['keys'] = broken['keys'][::-1].copy()
    with pytest.raises(ValueError, match='increasing'):
        SpatialMemory.from_arrays(broken)

    memory.reset()
    assert len(memory) == 0 and memory.render(frames[0].pose, frames[0].K, 8, 8).coverage == 0


@pytest.mark.parametrize('field, value', [('voxel_size', 0.0), ('max_points', 0),
                                          ('max_depth', 0.05), ('eviction_batch_fraction', 2.0),
                                          ('render_max_radius', -1), ('pixel_stride', 1.5)])
def test_config_values_are_validated(field, value):
    with pytest.raises(ValueError, match=field):
        SpatialMemoryConfig(**{field: value})


def test_voxel_keys_round_trip_and_group_chunks():
    rng = np.random.default_rng(0)
    coordinates = rng.integers(-voxels.COORDINATE_LIMIT, voxels.COORDINATE_LIMIT, (5000, 3))
    keys = voxels.pack_keys(coordinates)
    assert np.all(keys >= 0)
    np.testing.assert_array_equal(voxels.unpack_keys(keys), coordinates)
    order = np.argsort(keys)
    chunks = coordinates[order] >> voxels.CHUNK_BITS
    changes = np.any(np.diff(chunks, axis=0) != 0, axis=1)
    ids, offsets = voxels.chunk_runs(keys[order])
    assert len(ids) == changes.sum() + 1 == len(offsets) - 1
    assert not voxels.representable(np.array([[voxels.COORDINATE_LIMIT, 0, 0]]))[0]


def test_view_culling_keeps_every_chunk_with_a_visible_point():
    rng = np.random.default_rng(1)
    voxel = 0.05
    points = rng.uniform(-12.0, 12.0, (20000, 3))
    keys = np.unique(voxels.pack_keys(voxels.voxel_coordinates(points, voxel)))
    ids, _ = voxels.chunk_runs(keys)
    centres = (voxels.unpack_keys(keys) + 0.5) * voxel
    K = geometry.intrinsics_from_fovy(70.0, 40, 30)
    for yaw in np.linspace(-np.pi, np.pi, 7):
        pose = geometry.camera_pose_from_planar(0.3, -0.2, yaw, 0.5)
        kept = voxels.chunks_in_view(ids, voxel, pose, K, 40, 30, 0.05, 8.0, margin_pixels=2)
        uv, z = geometry.project_points(centres, K, pose)
        visible = (z > 0.05) & (z < 8.0) & np.all(uv > -2.5, axis=1) & (uv[:, 0] < 41.5) \
            & (uv[:, 1] < 31.5)
        needed = np.unique(voxels.chunk_ids(keys[visible]))
        assert set(needed) <= set(ids[kept])
        assert kept.sum() < len(ids)


def test_a_long_tour_stays_within_the_cap():
    from memory_scenes import maze_scene
    maze = maze_scene((3, 3), cell_size=2.0, seed=1)
    K = geometry.intrinsics_from_fovy(80.0, 32, 24)
    memory = SpatialMemory(SpatialMemoryConfig(voxel_size=0.05, max_points=3000))
    for index, pose in enumerate(tour_poses(maze, speed=2.0, rate_hz=3.0)):
        frame = maze.scene.render(pose, K, 32, 24)
        memory.integrate(frame.rgb, frame.depth, pose, K, (index + 1) * SECOND)
        assert len(memory) <= 3000
    assert memory.stats()['evicted'] > 0
