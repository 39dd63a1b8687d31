"""
Image-goal planning with a world model: the cross-entropy method over SE(2) control sequences.

Candidates are sequences of (forward speed, yaw rate) held for ``step_s`` each, rolled out
from the robot's base pose by exact unicycle motion; the world model imagines the views along
each candidate in one batched call, and a candidate costs the distance of its final view to
the goal image (plus, optionally, a penalty that the caller computes, e.g. disagreement with
memory). The best candidates refit the sampling distribution, as navigation world models do.
"""

from dataclasses import dataclass
import time

from mowm_ros.planning.paths import base_yaw, planar_base_pose, tilt_of
import numpy as np


@dataclass
class GoalPlannerConfig:
    samples: int = 16          # candidates per iteration
    elites: int = 4            # best candidates that refit the distribution
    iterations: int = 3
    horizon: int = 4           # control steps per candidate
    step_s: float = 0.5        # seconds each control is held (the model's frame spacing)
    max_speed: float = 2.0     # m/s
    max_turn_rate: float = 1.5  # rad/s
    time_budget_s: float = 0.0  # stop refining after this long (0: all iterations)
    seed: int = 0

    def __post_init__(self):
        if not 1 <= self.elites <= self.samples:
            raise ValueError(f'need 1 <= elites <= samples, got {self.elites}, {self.samples}')
        if self.horizon < 1 or self.iterations < 1 or self.step_s <= 0:
            raise ValueError('horizon and iterations must be >= 1 and step_s > 0')


@dataclass
class Plan:
    poses: np.ndarray          # (horizon, 4, 4) base poses of the best candidate
    controls: np.ndarray       # (horizon, 2) its (speed, yaw rate)
    cost: float
    final_view: np.ndarray     # the imagined view at its last pose
    iterations: int
    seconds: float


def rollout(start, controls, step_s) -> np.ndarray:
    """Return base poses (N, H, 4, 4) after each control of ``controls`` (N, H, 2) from start."""
    controls = np.asarray(controls, dtype=np.float64)
    x0, y0, yaw0, z = start[0, 3], start[1, 3], base_yaw(start), start[2, 3]
    tilt = tilt_of(start)
    out = np.empty(controls.shape[:2] + (4, 4))
    for n, sequence in enumerate(controls):
        x, y, yaw = x0, y0, yaw0
        for h, (speed, turn) in enumerate(sequence):
            if abs(turn) < 1e-9:
                x, y = x + speed * step_s * np.cos(yaw), y + speed * step_s * np.sin(yaw)
            else:
                radius = speed / turn
                x += radius * (np.sin(yaw + turn * step_s) - np.sin(yaw))
                y -= radius * (np.cos(yaw + turn * step_s) - np.cos(yaw))
            yaw += turn * step_s
            out[n, h] = planar_base_pose(x, y, yaw, z, tilt)
    return out


def image_distance(images, goal) -> np.ndarray:
    """Mean squared difference in [0, 1] of images (N, S, S, 3) to goal (S, S, 3), uint8."""
    diff = np.asarray(images, np.float32) / 255.0 - np.asarray(goal, np.float32)[None] / 255.0
    return (diff ** 2).mean(axis=(1, 2, 3))


class GoalPlanner:
    """
    Plan towards a goal image with ``imagine(base_poses (N, H, 4, 4)) -> images (N, H, S, S, 3)``.

    ``penalty(base_poses, images) -> (N,)``, when given, is added to each candidate's cost.
    """

    def __init__(self, imagine, config=None, penalty=None) -> None:
        self.imagine = imagine
        self.config = config or GoalPlannerConfig()
        self.penalty = penalty
        self.rng = np.random.default_rng(self.config.seed)

    def plan(self, start, goal_image) -> Plan:
        c = self.config
        start_time = time.monotonic()
        limits = np.array([c.max_speed, c.max_turn_rate])
        mean = np.zeros((c.horizon, 2))
        std = np.tile(limits / 2, (c.horizon, 1))
        best = None
        iterations = 0
        for _ in range(c.iterations):
            controls = self.rng.normal(mean, std, size=(c.samples, c.horizon, 2))
            controls = np.clip(controls, [0.0, -c.max_turn_rate], limits)
            if best is not None:
                controls[0] = best.controls              # keep the best one found so far
            poses = rollout(start, controls, c.step_s)
            images = np.asarray(self.imagine(poses))
            costs = image_distance(images[:, -1], goal_image)
            if self.penalty is not None:
                costs = costs + np.asarray(self.penalty(poses, images), dtype=np.float64)
            order = np.argsort(costs)
            winner = order[0]
            if best is None or costs[winner] < best.cost:
                best = Plan(poses[winner], controls[winner], float(costs[winner]),
                            images[winner, -1], 0, 0.0)
            elites = controls[order[:c.elites]]
            mean, std = elites.mean(axis=0), elites.std(axis=0) + 1e-3
            iterations += 1
            if c.time_budget_s and time.monotonic() - start_time > c.time_budget_s:
                break
        best.iterations = iterations
        best.seconds = time.monotonic() - start_time
        return best
