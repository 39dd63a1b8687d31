"""The CEM goal planner on synthetic world models whose best trajectory is known."""

from mowm_ros.planning.goal_planner import (GoalPlanner, GoalPlannerConfig, image_distance,
                                            rollout)
from mowm_ros.planning.paths import base_yaw, extrapolate_twist, planar_base_pose
import numpy as np
import pytest

GOAL = np.array([3.0, 1.5])


def view_of(position):
    """Return a synthetic camera view whose colour encodes where it was taken."""
    colour = np.clip(128 + 40 * (np.asarray(position) - GOAL), 0, 255)
    image = np.zeros((8, 8, 3), np.uint8)
    image[..., 0], image[..., 1] = colour[0], colour[1]
    return image


def synthetic_imagine(poses):
    return np.stack([[view_of(p[:2, 3]) for p in path] for path in poses])


def test_rollout_matches_constant_twist_extrapolation():
    start = planar_base_pose(0.5, -1.0, 0.3, 0.2)
    controls = np.array([[[1.0, 0.8]] * 3, [[0.5, 0.0]] * 3])
    poses = rollout(start, controls, 0.5)
    np.testing.assert_allclose(poses[0], extrapolate_twist(start, 1.0, 0.8, 3, 0.5), atol=1e-9)
    np.testing.assert_allclose(poses[1], extrapolate_twist(start, 0.5, 0.0, 3, 0.5), atol=1e-9)


def test_cem_reaches_the_pose_whose_view_is_the_goal_image():
    start = planar_base_pose(0.0, 0.0, 0.0)
    calls = []

    def imagine(poses):
        calls.append(len(poses))
        return synthetic_imagine(poses)

    planner = GoalPlanner(imagine, GoalPlannerConfig(samples=64, elites=8, iterations=6,
                                                     horizon=4, seed=1))
    plan = planner.plan(start, view_of(GOAL))
    assert np.linalg.norm(plan.poses[-1][:2, 3] - GOAL) < 0.4
    assert plan.iterations == 6 and calls == [64] * 6     # one batched call per iteration
    random_costs = image_distance(synthetic_imagine(rollout(
        start, np.random.default_rng(0).uniform([0, -1.5], [2, 1.5], (64, 4, 2)), 0.5))[:, -1],
        view_of(GOAL))
    assert plan.cost < np.min(random_costs)


def test_the_penalty_steers_between_equally_good_goals():
    start = planar_base_pose(0.0, 0.0, 0.0)
    goal = np.zeros((8, 8, 3), np.uint8)          # every view looks the same: only the penalty
    planner = GoalPlanner(lambda poses: np.zeros(poses.shape[:2] + (8, 8, 3), np.uint8),
                          GoalPlannerConfig(samples=48, elites=6, iterations=5, seed=2),
                          penalty=lambda poses, images: np.abs(poses[:, -1, 1, 3] - 1.0))
    plan = planner.plan(start, goal)
    assert plan.poses[-1][1, 3] == pytest.approx(1.0, abs=0.25)
    assert base_yaw(plan.poses[-1]) > 0


def test_time_budget_stops_refining():
    slow = GoalPlanner(lambda poses: synthetic_imagine(poses),
                       GoalPlannerConfig(iterations=50, time_budget_s=1e-6))
    assert slow.plan(planar_base_pose(0, 0, 0), view_of(GOAL)).iterations == 1
    with pytest.raises(ValueError):
        GoalPlannerConfig(samples=4, elites=5)
