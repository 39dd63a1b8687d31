"""The image-goal navigator on synthetic world models and maps whose answers are known."""

import math
import time

from mowm_ros.memory.spatial import FREE, OccupancyGrid, OCCUPIED, UNKNOWN
from mowm_ros.planning.goal_planner import GoalPlannerConfig
from mowm_ros.planning.navigator import (ImageGoalNavigator, NavigatorConfig, RouteMap,
                                         view_distance, world_model_imagine,
                                         world_model_keyframes)
from mowm_ros.planning.paths import base_yaw, planar_base_pose
import numpy as np
import pytest

RESOLUTION = 0.1
GOAL = (8.0, 1.0, math.pi / 2)      # beyond the wall from the start
START = (1.5, 1.0, 0.0)


def room(gap=True):
    """Return a 10 m x 6 m walled room split by a wall at x = 5 m, open at the top if ``gap``."""
    cells = np.full((60, 100), FREE, np.int8)
    cells[0, :] = cells[-1, :] = cells[:, 0] = cells[:, -1] = OCCUPIED
    cells[:45 if gap else 60, 50] = OCCUPIED
    return OccupancyGrid(cells.reshape(-1).copy(), RESOLUTION, 0.0, 0.0, 100, 60)


def view_of(x, y, yaw):
    """Return a 16 x 16 view whose colours encode the pose it was taken from."""
    image = np.zeros((16, 16, 3), np.uint8)
    image[..., 0] = np.clip(25 * x, 0, 255)
    image[..., 1] = np.clip(40 * y, 0, 255)
    image[:, :8, 2] = np.clip(128 + 100 * math.cos(yaw), 0, 255)
    image[:, 8:, 2] = np.clip(128 + 100 * math.sin(yaw), 0, 255)
    return image


class SyntheticWorld:
    """``imagine`` that renders ``view_of`` each pose, counting the views asked for."""

    def __init__(self, delay=0.0):
        self.views = 0
        self.calls = 0
        self.delay = delay

    def __call__(self, poses):
        self.calls += 1
        self.views += poses.shape[0] * poses.shape[1]
        time.sleep(self.delay)
        return np.stack([[view_of(p[0, 3], p[1, 3], base_yaw(p)) for p in path]
                         for path in poses])


def config(**changes):
    settings = {'candidate_spacing': 1.0, 'candidate_yaws': 8, 'max_candidates': 1000,
                'refine_top': 4, 'refine_samples': 16, 'refine_position': 0.3,
                'refine_yaw': 0.2, 'approach_distance': 0.0, 'seed': 3}
    settings.update(changes)
    return NavigatorConfig(**settings)


def pose(x, y, yaw):
    return planar_base_pose(x, y, yaw)


def clearance_along(path, grid):
    """Return the smallest distance (m) of the path's points to an occupied cell."""
    cells = grid.cells
    rows, cols = np.nonzero(cells == OCCUPIED)
    walls = np.stack([(cols + 0.5) * RESOLUTION, (rows + 0.5) * RESOLUTION], 1)
    points = path[:, :2, 3]
    return float(np.min(np.linalg.norm(points[:, None] - walls[None], axis=2)))


def test_localises_the_goal_and_routes_around_the_wall():
    world, grid = SyntheticWorld(), room()
    navigator = ImageGoalNavigator(world, lambda: grid, config())
    plan = navigator.plan(pose(*START), view_of(*GOAL))
    goal = plan.believed_goal
    assert np.linalg.norm(goal[:2, 3] - GOAL[:2]) < 0.4
    assert abs(math.remainder(base_yaw(goal) - GOAL[2], 2 * math.pi)) < 0.3
    assert plan.stage == 'route' and plan.reachable and not plan.arrived
    assert plan.score == pytest.approx(float(view_distance(plan.imagined_goal_view[None],
                                                           view_of(*GOAL))[0]))
    np.testing.assert_allclose(plan.path[0], pose(*START))
    np.testing.assert_allclose(plan.path[-1], goal)
    # Around the wall through the gap at the top, never closer to a wall than the robot.
    assert plan.path[:, 1, 3].max() > 4.5
    assert clearance_along(plan.path, grid) >= navigator.config.robot_radius - RESOLUTION
    steps = np.linalg.norm(np.diff(plan.path[:, :2, 3], axis=0), axis=1)
    assert steps.max() <= navigator.config.path_spacing + 1e-6
    assert plan.views_scored == world.views


def test_the_goal_is_localised_once_per_goal_image():
    world = SyntheticWorld()
    navigator = ImageGoalNavigator(world, room, config())
    first = navigator.plan(pose(*START), view_of(*GOAL))
    views = world.views
    second = navigator.plan(pose(2.0, 1.5, 0.3), view_of(*GOAL))
    assert world.views == views and second.views_scored == 0
    np.testing.assert_allclose(second.believed_goal, first.believed_goal)
    other = navigator.plan(pose(*START), view_of(2.0, 4.0, math.pi))
    assert world.views > views
    assert np.linalg.norm(other.believed_goal[:2, 3] - [2.0, 4.0]) < 0.4
    again = ImageGoalNavigator(SyntheticWorld(), room, config(relocalise_every=1))
    again.plan(pose(*START), view_of(*GOAL))
    assert again.plan(pose(*START), view_of(*GOAL)).views_scored > 0


def test_keyframe_poses_are_candidates():
    world = SyntheticWorld()
    keyframes = np.stack([pose(3.3, 2.2, 0.7), pose(*GOAL), pose(6.0, 5.0, -1.0)])
    # A lattice far too coarse to find the goal: only the keyframe can.
    navigator = ImageGoalNavigator(world, room, config(candidate_spacing=50.0, refine_top=0),
                                   keyframes=lambda: keyframes)
    plan = navigator.plan(pose(*START), view_of(*GOAL))
    np.testing.assert_allclose(plan.believed_goal, pose(*GOAL), atol=1e-9)
    assert plan.score == pytest.approx(0.0)


def test_keyframes_are_kept_when_the_candidates_are_capped():
    keyframes = np.stack([pose(1.0 + 0.1 * k, 1.0, 0.0) for k in range(30)] + [pose(*GOAL)])
    navigator = ImageGoalNavigator(SyntheticWorld(), room, config(max_candidates=40),
                                   keyframes=lambda: keyframes)
    candidates = navigator.candidates(pose(*START), RouteMap(room(), navigator.config))
    assert len(candidates) == 40
    for keyframe in keyframes:
        assert np.min(np.abs(candidates - keyframe).max(axis=(1, 2))) < 1e-9
    thinned = ImageGoalNavigator(SyntheticWorld(), room, config(max_candidates=11),
                                 keyframes=lambda: keyframes)
    kept = thinned.candidates(pose(*START), None)
    assert len(kept) == 11
    np.testing.assert_allclose(kept[[0, -1]], keyframes[[0, -1]], atol=1e-9)


def test_a_cut_off_goal_routes_to_the_nearest_reachable_place():
    grid = room(gap=False)
    navigator = ImageGoalNavigator(SyntheticWorld(), lambda: grid, config())
    plan = navigator.plan(pose(*START), view_of(*GOAL))
    assert not plan.reachable and plan.stage == 'route'
    end = plan.path[-1, :2, 3]
    assert end[0] < 5.0 and end[0] > 5.0 - 0.6              # at the wall, on the robot's side
    assert clearance_along(plan.path, grid) >= navigator.config.robot_radius - RESOLUTION
    np.testing.assert_allclose(plan.goal_pose, plan.path[-1])


def test_unknown_cells_cost_more_or_block():
    cells = room().cells.copy()
    cells[1:30, 51:99] = UNKNOWN                 # the lower right quarter is unexplored
    grid = OccupancyGrid(cells.reshape(-1).copy(), RESOLUTION, 0.0, 0.0, 100, 60)
    costly = RouteMap(grid, config(unknown_cost=10.0))
    blocked = RouteMap(grid, config(unknown_cost=math.inf))
    assert np.isfinite(costly.cost[10, 70]) and costly.cost[10, 70] > costly.cost[40, 70]
    assert not blocked.traversable[10, 70]
    path, reached = blocked.route([1.5, 1.0], [8.0, 1.0])
    assert not reached and path[-1, 1] >= 2.9                 # stops where the known floor ends
    path, reached = costly.route([1.5, 1.0], [8.0, 1.0])
    assert reached


def test_approach_refines_near_the_goal_and_arrival_stops():
    world = SyntheticWorld()
    navigator = ImageGoalNavigator(world, room, config(
        approach_distance=2.0, arrive_distance=0.3,
        approach=GoalPlannerConfig(samples=32, elites=6, iterations=4, horizon=2, step_s=0.5,
                                   max_speed=1.0, max_turn_rate=1.5, seed=1)))
    goal = view_of(*GOAL)
    near = pose(GOAL[0], GOAL[1] - 1.0, math.pi / 2)       # 1 m short, facing the goal
    plan = navigator.plan(near, goal)
    assert plan.stage == 'approach' and plan.reachable
    np.testing.assert_allclose(plan.path[0], near)
    assert len(plan.path) == 3                              # the robot + the CEM's horizon
    # The CEM ends nearer the goal than it started and its view is closer to the goal image.
    assert np.linalg.norm(plan.goal_pose[:2, 3] - GOAL[:2]) < 0.6
    assert plan.score < view_distance(world(near[None, None])[:, 0], goal)[0]
    there = navigator.plan(pose(GOAL[0], GOAL[1] - 0.1, GOAL[2]), goal)
    assert there.arrived and there.stage == 'arrived'


def test_the_time_budget_cuts_localisation_short():
    world = SyntheticWorld(delay=0.05)
    navigator = ImageGoalNavigator(world, room, config(batch_size=16, time_budget_s=0.12))
    plan = navigator.plan(pose(*START), view_of(*GOAL))
    # Without the budget every candidate would be scored (hundreds, in many batches).
    assert 16 <= plan.views_scored <= 64 and world.calls <= 4
    assert plan.path.shape[1:] == (4, 4)


def test_bad_inputs_and_settings_are_named():
    navigator = ImageGoalNavigator(SyntheticWorld(), room, config())
    with pytest.raises(ValueError, match='base_pose'):
        navigator.plan(np.full((4, 4), np.nan), view_of(*GOAL))
    with pytest.raises(ValueError, match='goal_image'):
        navigator.plan(pose(*START), np.zeros((16, 16, 3), np.float32))
    for name, value in (('candidate_yaws', 0), ('grid_resolution', 0.0), ('unknown_cost', 0.5),
                        ('robot_radius', -1.0), ('time_budget_s', math.nan),
                        ('max_candidates', 2.5), ('approach', None), ('batch_size', 0)):
        with pytest.raises(ValueError, match=f'NavigatorConfig.{name}'):
            NavigatorConfig(**{name: value})
    with pytest.raises(ValueError, match='z_max'):
        NavigatorConfig(z_min=1.0, z_max=0.5)


def test_an_empty_map_still_answers():
    empty = OccupancyGrid(np.zeros(0, np.int8), 0.1, 0.0, 0.0, 0, 0)
    keyframes = np.stack([pose(*GOAL)])
    navigator = ImageGoalNavigator(SyntheticWorld(), lambda: empty, config(),
                                   keyframes=lambda: keyframes)
    plan = navigator.plan(pose(*START), view_of(*GOAL))
    assert not plan.reachable and len(plan.path) >= 2
    np.testing.assert_allclose(plan.path[-1, :2, 3], GOAL[:2])


def test_nothing_to_localise_against_means_no_route_and_no_arrival():
    empty = OccupancyGrid(np.zeros(0, np.int8), 0.1, 0.0, 0.0, 0, 0)
    world = SyntheticWorld()
    navigator = ImageGoalNavigator(world, lambda: empty, config())
    plan = navigator.plan(pose(*START), view_of(*GOAL))
    assert not plan.reachable and not plan.arrived and plan.score == math.inf
    assert world.calls == 0 and navigator.estimate is None
    np.testing.assert_allclose(plan.path[-1], pose(*START))


def test_world_model_imagine_predicts_near_and_far_paths():
    import torch

    from mowm_ros import geometry
    from mowm_ros.extrinsics import CAMERA_MOUNT
    from mowm_ros.world_model import Frame, WorldModel, WorldModelConfig

    torch.set_num_threads(1)
    base_from_camera = geometry.make_pose(
        geometry.matrix_from_quaternion_xyzw(CAMERA_MOUNT[3:]), CAMERA_MOUNT[:3])
    model = WorldModel(WorldModelConfig(device='cpu', finetune_on_observe=False,
                                        sampler_steps=1))
    try:
        rng = np.random.default_rng(0)
        K = geometry.intrinsics_from_fovy(80.0, 64, 64)
        for k in range(3):
            base = pose(0.3 * k, 0.0, 0.0)
            model.observe(Frame(rgb=rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
                                pose=base @ base_from_camera, K=K, stamp=k * 500_000_000,
                                depth=np.full((64, 64), 2.0, np.float32)))
        imagine = world_model_imagine(model, base_from_camera, steps=1, recall_distance=2.0)
        paths = np.stack([[pose(0.8, 0.0, 0.0), pose(1.0, 0.0, 0.0)],      # near: rolled out
                          [pose(6.0, 3.0, 1.0), pose(6.2, 3.0, 1.0)]])     # far: from memory
        images = imagine(paths)
        assert images.shape == (2, 2, 64, 64, 3) and images.dtype == np.uint8
        assert images.std() > 0
        cameras = paths @ base_from_camera
        # The near path is rolled out from the recent context; the far one (6 m from the
        # newest frame) is recalled from the memories, pose by pose, not rolled out.
        np.testing.assert_array_equal(images[0], model.imagine(cameras[:1], steps=1).images[0])
        np.testing.assert_array_equal(images[1], model.recall(cameras[1], steps=1))
        assert not np.array_equal(images[1], model.imagine(cameras[1:], steps=1).images[0])
        no_memory = world_model_imagine(model, base_from_camera, experts=('short_term',),
                                        steps=1)
        assert no_memory(paths[1:, :1]).shape == (1, 1, 64, 64, 3)
        keyframes = world_model_keyframes(model, base_from_camera)()
        assert keyframes.shape[1:] == (4, 4) and len(keyframes) >= 1
        np.testing.assert_allclose(keyframes[0], pose(0.0, 0.0, 0.0), atol=1e-9)
        with pytest.raises(ValueError, match='base poses'):
            imagine(np.zeros((4, 4)))
    finally:
        model.close()
