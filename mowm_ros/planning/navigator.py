"""
Image-goal navigation with a world model: find where the goal image was taken, then go there.

A short-horizon CEM alone cannot reach a goal from across a maze, so ``ImageGoalNavigator``
plans in three stages:

1. Localise the goal. Candidate base poses (free cells of the memory's occupancy grid on a
   lattice, times several headings, plus the episodic keyframes' poses when given) are scored
   by how far the view the world model imagines there is from the goal image; the best few
   are perturbed and scored again. The winner is the believed goal pose, kept for later plans
   towards the same goal image.
2. Route. The cheapest path over the occupancy grid (obstacles inflated by the robot's radius,
   extra cost near walls, unknown cells costly or blocked) from the robot to that pose; when
   it cannot be reached, to the reachable cell nearest to it.
3. Approach. Within ``approach_distance`` of it, GoalPlanner's cross-entropy method over
   (speed, yaw rate) sequences shapes the last metres on the goal image, penalised for
   leaving free space and for straying from the believed goal (consistency with the memory).

``imagine(base_poses (N, H, 4, 4)) -> uint8 (N, H, S, S, 3)`` and ``occupancy() ->
OccupancyGrid`` are all the navigator knows of the world model; ``world_model_imagine`` makes
such an ``imagine`` from a WorldModel.
"""

from dataclasses import dataclass, field, replace
import math
import time
import typing

from mowm_ros.memory.spatial import FREE, OCCUPIED, UNKNOWN
from mowm_ros.model.experts import MEMORY_EXPERTS
from mowm_ros.planning.goal_planner import GoalPlanner, GoalPlannerConfig
from mowm_ros.planning.paths import base_yaw, planar_base_pose, tilt_of
import numpy as np
from scipy import ndimage
from skimage.graph import MCP_Geometric

STAGES = ('route', 'approach', 'arrived')


def _approach_defaults():
    return GoalPlannerConfig(samples=16, elites=4, iterations=2, horizon=3, step_s=0.5,
                             max_speed=1.0, max_turn_rate=1.2)


@dataclass
class NavigatorConfig:
    # Routing grid (from the spatial memory) and its costs.
    grid_resolution: float = 0.1       # m
    z_min: float = 0.1                 # m: points in [z_min, z_max] are obstacles
    z_max: float = 1.5
    robot_radius: float = 0.3          # m: obstacles are inflated by this
    wall_margin: float = 0.7           # m: within this of an obstacle cells cost more
    wall_cost: float = 4.0             # extra cost at the inflated edge, falling to 0 at margin
    unknown_cost: float = 4.0          # cost factor of unknown cells; inf: never through them
    path_spacing: float = 0.25         # m between the poses of a returned path
    # Goal localisation.
    candidate_spacing: float = 1.0     # m: lattice of candidate positions over free cells
    candidate_yaws: int = 8            # headings per lattice position
    candidate_clearance: float = 0.4   # m from obstacles
    use_keyframes: bool = True         # score the keyframes' poses too
    max_candidates: int = 256          # keyframes first, then a random subset of the lattice
    refine_top: int = 4                # best candidates perturbed and scored again
    refine_samples: int = 8            # perturbations of each
    refine_position: float = 0.5       # m, standard deviation
    refine_yaw: float = 0.3            # rad, standard deviation
    batch_size: int = 64               # candidate views per imagine call
    compare_size: int = 16             # views are average-pooled to this side to compare
    relocalise_every: int = 0          # plans between localisations of one goal; 0: once
    # Final approach and arrival.
    approach_distance: float = 2.0     # m from the believed goal where the CEM takes over; 0: off
    arrive_distance: float = 0.5       # m from the believed goal: arrived
    collision_weight: float = 1.0      # approach cost per share of poses in blocked cells
    goal_weight: float = 0.02          # approach cost per metre from the believed goal
    approach: GoalPlannerConfig = field(default_factory=_approach_defaults)
    time_budget_s: float = 0.0         # per plan: stop scoring and refining after this; 0: none
    seed: int = 0

    def __post_init__(self):
        def require(condition, name, expectation):
            if not condition:
                raise ValueError(f'NavigatorConfig.{name} must be {expectation}, got '
                                 f'{getattr(self, name)!r}')

        def number(name):
            value = getattr(self, name)
            return not isinstance(value, bool) and isinstance(value, (int, float))

        for name in ('grid_resolution', 'path_spacing', 'candidate_spacing', 'batch_size',
                     'compare_size', 'arrive_distance', 'z_max'):
            require(number(name) and math.isfinite(getattr(self, name))
                    and getattr(self, name) > 0, name, 'a finite number > 0')
        for name in ('z_min', 'robot_radius', 'wall_margin', 'wall_cost', 'candidate_clearance',
                     'refine_position', 'refine_yaw', 'approach_distance', 'collision_weight',
                     'goal_weight', 'time_budget_s'):
            require(number(name) and math.isfinite(getattr(self, name))
                    and getattr(self, name) >= 0, name, 'a finite number >= 0')
        require(self.z_max > self.z_min, 'z_max', f'> z_min ({self.z_min})')
        require(number('unknown_cost') and self.unknown_cost >= 1, 'unknown_cost',
                '>= 1 (inf blocks unknown cells)')
        for name, minimum in (('candidate_yaws', 1), ('max_candidates', 1), ('refine_top', 0),
                              ('refine_samples', 0), ('relocalise_every', 0), ('batch_size', 1),
                              ('compare_size', 1)):
            value = getattr(self, name)
            require(isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                    and value >= minimum, name, f'an integer >= {minimum}')
        require(isinstance(self.approach, GoalPlannerConfig), 'approach', 'a GoalPlannerConfig')


@dataclass
class NavigationPlan:
    """One decision of the navigator; every pose is a 4x4 world (odometry) <- base."""

    path: np.ndarray                  # (N, 4, 4) from the robot's pose to goal_pose
    goal_pose: np.ndarray             # where the path ends
    score: float                      # imagined_goal_view's distance to the goal image
    imagined_goal_view: np.ndarray    # (S, S, 3) uint8: the view imagined at goal_pose
    reachable: bool                   # the route reaches goal_pose (else the nearest reachable)
    seconds: float                    # wall time of this plan
    stage: str = 'route'              # route | approach | arrived
    believed_goal: np.ndarray = None  # the localised goal pose (4x4)
    views_scored: int = 0             # views imagined for localisation in this plan (0: cached)

    @property
    def arrived(self) -> bool:
        return self.stage == 'arrived'


@dataclass
class GoalEstimate:
    """Where the goal image is believed to have been taken."""

    pose: np.ndarray
    score: float
    view: np.ndarray
    views_scored: int


def view_distance(images, goal, size=16) -> np.ndarray:
    """
    Return the mean squared difference in [0, 1] of images (N, S, S, 3) to goal (S, S, 3).

    Both are average-pooled to ``size`` x ``size`` first (when S is a multiple of it), so the
    comparison rests on layout and colour rather than on the sampler's fine texture.
    """
    images = np.asarray(images, np.float32) / 255.0
    goal = np.asarray(goal, np.float32) / 255.0
    side = images.shape[1]
    if size < side and side % size == 0:
        k = side // size
        images = images.reshape(len(images), size, k, size, k, 3).mean(axis=(2, 4))
        goal = goal.reshape(size, k, size, k, 3).mean(axis=(1, 3))
    return ((images - goal[None]) ** 2).mean(axis=(1, 2, 3)).astype(np.float64)


class RouteMap:
    """Traversal costs over an OccupancyGrid and the cheapest routes through it."""

    def __init__(self, grid, config) -> None:
        self.grid = grid
        self.config = c = config
        cells = grid.cells
        self.free = cells == FREE
        occupied = cells == OCCUPIED
        if occupied.any():
            self.clearance = ndimage.distance_transform_edt(~occupied) * grid.resolution
        else:
            self.clearance = np.full(cells.shape, np.inf)
        cost = np.ones(cells.shape)
        if c.wall_margin > c.robot_radius:
            nearness = (c.wall_margin - self.clearance) / (c.wall_margin - c.robot_radius)
            cost += c.wall_cost * np.clip(nearness, 0.0, 1.0)
        cost[cells == UNKNOWN] *= c.unknown_cost
        cost[self.clearance < c.robot_radius] = np.inf
        self.cost = cost
        self.traversable = np.isfinite(cost)

    @property
    def shape(self) -> tuple:
        return self.cost.shape

    def cell_of(self, xy) -> tuple:
        """Return the (row, col) of world point ``xy``, clipped into the grid."""
        row, col = self.grid.cell_of(float(xy[0]), float(xy[1]))
        return (min(max(row, 0), self.shape[0] - 1), min(max(col, 0), self.shape[1] - 1))

    def centres(self, rows, cols) -> np.ndarray:
        """Return the world (x, y) of cell centres, (N, 2)."""
        g = self.grid
        return np.stack([g.origin_x + (np.asarray(cols) + 0.5) * g.resolution,
                         g.origin_y + (np.asarray(rows) + 0.5) * g.resolution], axis=-1)

    def is_blocked(self, xy) -> np.ndarray:
        """Return a bool per world point (N, 2): outside the grid or not traversable."""
        g = self.grid
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        cols = np.floor((xy[:, 0] - g.origin_x) / g.resolution).astype(np.int64)
        rows = np.floor((xy[:, 1] - g.origin_y) / g.resolution).astype(np.int64)
        inside = (rows >= 0) & (rows < self.shape[0]) & (cols >= 0) & (cols < self.shape[1])
        blocked = np.ones(len(xy), bool)
        blocked[inside] = ~self.traversable[rows[inside], cols[inside]]
        return blocked

    def nearest_traversable(self, cell) -> tuple | None:
        """Return the traversable cell nearest to ``cell`` (itself when traversable), or None."""
        if self.traversable[cell]:
            return cell
        if not self.traversable.any():
            return None
        _, (rows, cols) = ndimage.distance_transform_edt(~self.traversable, return_indices=True)
        return int(rows[cell]), int(cols[cell])

    def route(self, start_xy, goal_xy) -> tuple:
        """
        Return (positions (N, 2), reached) of the cheapest route from start to goal.

        A blocked start cell is moved to the nearest traversable cell, and so is a blocked goal
        cell; the goal counts as reached when that cell is reachable and within the robot's
        radius (plus a cell) of the goal. Otherwise the route ends at the reachable cell
        nearest to the goal and ``reached`` is False. Returns (None, False) when nothing is
        traversable.
        """
        start = self.nearest_traversable(self.cell_of(start_xy))
        goal_cell = self.cell_of(goal_xy)
        goal = self.nearest_traversable(goal_cell)
        if start is None or goal is None:
            return None, False
        mcp = MCP_Geometric(self.cost, fully_connected=True)
        costs, _ = mcp.find_costs([start])
        if not np.isfinite(costs[goal]):
            rows, cols = np.nonzero(np.isfinite(costs))
            gap = np.hypot(rows - goal_cell[0], cols - goal_cell[1])
            goal = int(rows[np.argmin(gap)]), int(cols[np.argmin(gap)])
        tolerance = self.config.robot_radius + self.grid.resolution
        reached = bool(np.linalg.norm(self.centres(*goal) - goal_xy) <= tolerance)
        cells = np.array(mcp.traceback(goal))
        positions = self.centres(cells[:, 0], cells[:, 1])
        positions = np.concatenate([np.asarray(start_xy, np.float64)[None], positions])
        if reached and self.traversable[goal_cell]:
            positions = np.concatenate([positions, np.asarray(goal_xy, np.float64)[None]])
        return positions, reached

    def lattice(self, spacing, clearance) -> np.ndarray:
        """Return free positions (N, 2) at least ``clearance`` from obstacles, one per bin."""
        rows, cols = np.nonzero(self.free & (self.clearance >= clearance) & self.traversable)
        if len(rows) == 0:
            return np.zeros((0, 2))
        xy = self.centres(rows, cols)
        bins = np.floor(xy / spacing).astype(np.int64)
        # Per bin the cell farthest from obstacles: candidates sit mid-corridor.
        order = np.lexsort((-self.clearance[rows, cols], bins[:, 1], bins[:, 0]))
        _, first = np.unique(bins[order], axis=0, return_index=True)
        return xy[order[first]]


def resample(positions, spacing) -> np.ndarray:
    """Return points along the polyline ``positions`` (N, 2) at most ``spacing`` apart."""
    positions = np.asarray(positions, np.float64)
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    keep = np.concatenate([[True], steps > 1e-9])
    positions, steps = positions[keep], steps[steps > 1e-9]
    if len(positions) < 2:
        return positions
    cumulative = np.concatenate([[0.0], np.cumsum(steps)])
    count = max(int(math.ceil(cumulative[-1] / spacing)), 1)
    targets = np.linspace(0.0, cumulative[-1], count + 1)
    return np.stack([np.interp(targets, cumulative, positions[:, i]) for i in range(2)], 1)


def path_poses(positions, start_pose, goal_pose) -> np.ndarray:
    """Return base poses along ``positions``: the robot's first, headings along segments."""
    z, tilt = start_pose[2, 3], tilt_of(start_pose)
    poses = [np.array(start_pose, np.float64)]
    for k in range(1, len(positions)):
        if k == len(positions) - 1 and goal_pose is not None:
            yaw = base_yaw(goal_pose)
        else:
            dx, dy = positions[k] - positions[k - 1]
            yaw = math.atan2(dy, dx)
        poses.append(planar_base_pose(positions[k, 0], positions[k, 1], yaw, z, tilt))
    return np.stack(poses)


def _check_inputs(base_pose, goal_image):
    pose = np.asarray(base_pose, np.float64)
    if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
        raise ValueError(f'base_pose must be a finite 4x4 matrix, got shape {pose.shape}')
    goal = np.asarray(goal_image)
    if goal.ndim != 3 or goal.shape[2] != 3 or goal.dtype != np.uint8 \
            or goal.shape[0] != goal.shape[1]:
        raise ValueError(f'goal_image must be uint8 (S, S, 3), got {goal.dtype} {goal.shape}')
    return pose, goal


class ImageGoalNavigator:
    """
    Plan from the robot's base pose to where ``goal_image`` was seen (see the module docstring).

    ``keyframes() -> (M, 4, 4)`` base poses, when given, adds the episodic keyframes' poses to
    the goal candidates; ``penalty(base_poses, images) -> (N,)`` is added to the approach cost.
    """

    def __init__(self, imagine, occupancy, config=None, keyframes=None, penalty=None) -> None:
        self.imagine = imagine
        self.occupancy = occupancy
        self.config = config or NavigatorConfig()
        self.keyframes = keyframes
        self.penalty = penalty
        self.rng = np.random.default_rng(self.config.seed)
        self.approach = GoalPlanner(imagine, self.config.approach, penalty=self._approach_cost)
        self.estimate = None
        self._goal_key = None
        self._plans_since_localised = 0
        self._route_map = None

    def reset(self) -> None:
        """Forget the goal: the next plan localises afresh."""
        self.estimate = None
        self._goal_key = None

    def plan(self, base_pose, goal_image) -> NavigationPlan:
        """Return the NavigationPlan from ``base_pose`` (4x4) towards ``goal_image``."""
        started = time.monotonic()
        pose, goal = _check_inputs(base_pose, goal_image)
        c = self.config
        grid = self.occupancy()
        self._route_map = route_map = RouteMap(grid, c) if grid.width * grid.height else None
        key = (goal.shape, hash(goal.tobytes()))
        views = 0
        if (self.estimate is None or key != self._goal_key
                or (c.relocalise_every and self._plans_since_localised >= c.relocalise_every)):
            estimate = self.localise(pose, goal, route_map, started)
            if estimate is None:      # nothing to compare with yet: stay, try again next time
                self.reset()
                return NavigationPlan(np.stack([pose, pose]), pose, math.inf,
                                      np.zeros_like(goal), False, time.monotonic() - started,
                                      'route', believed_goal=None, views_scored=0)
            self.estimate, self._goal_key = estimate, key
            self._plans_since_localised = 0
            views = estimate.views_scored
        self._plans_since_localised += 1
        estimate = self.estimate
        believed = estimate.pose
        distance = float(np.linalg.norm(believed[:2, 3] - pose[:2, 3]))
        common = {'believed_goal': believed, 'views_scored': views}
        if distance <= c.arrive_distance:
            return NavigationPlan(np.stack([pose, believed]), believed, estimate.score,
                                  estimate.view, True, time.monotonic() - started, 'arrived',
                                  **common)
        if c.approach_distance and distance <= c.approach_distance:
            return self._approach(pose, goal, started, common)
        if route_map is None:
            positions, reached = None, False
        else:
            positions, reached = route_map.route(pose[:2, 3], believed[:2, 3])
        if positions is None:     # no map yet: head straight for it
            positions, reached = np.stack([pose[:2, 3], believed[:2, 3]]), False
        positions = resample(positions, c.path_spacing)
        end = believed if reached else None
        path = path_poses(positions, pose, end)
        return NavigationPlan(path, path[-1], estimate.score, estimate.view, reached,
                              time.monotonic() - started, 'route', **common)

    # --- localisation -----------------------------------------------------------------------
    def candidates(self, pose, route_map) -> np.ndarray:
        """
        Return at most ``max_candidates`` candidate goal base poses (N, 4, 4).

        The keyframes' poses (places the robot has seen) come first, evenly thinned when they
        alone are too many; lattice poses fill the rest, a random subset when they do not fit.
        """
        c = self.config
        z, tilt = pose[2, 3], tilt_of(pose)
        known, lattice = [], []
        if c.use_keyframes and self.keyframes is not None:
            frames = np.asarray(self.keyframes(), np.float64).reshape(-1, 4, 4)
            if len(frames) > c.max_candidates:
                frames = frames[np.linspace(0, len(frames) - 1, c.max_candidates).round()
                                .astype(int)]
            known = [planar_base_pose(k[0, 3], k[1, 3], base_yaw(k), z, tilt) for k in frames]
        room = c.max_candidates - len(known)
        if route_map is not None and room > 0:
            positions = route_map.lattice(c.candidate_spacing, c.candidate_clearance)
            yaws = 2 * np.pi * np.arange(c.candidate_yaws) / c.candidate_yaws
            lattice = [planar_base_pose(x, y, yaw, z, tilt) for x, y in positions
                       for yaw in yaws]
            if len(lattice) > room:
                pick = np.sort(self.rng.choice(len(lattice), room, replace=False))
                lattice = [lattice[i] for i in pick]
        poses = lattice + known
        return np.stack(poses) if poses else np.zeros((0, 4, 4))

    def _score(self, poses, goal, started):
        """Imagine and score ``poses`` in batches until the time budget is spent."""
        c = self.config
        scores, views = [], []
        for begin in range(0, len(poses), c.batch_size):
            if scores and self._out_of_time(started):
                break
            batch = poses[begin:begin + c.batch_size]
            images = np.asarray(self.imagine(batch[:, None]))[:, 0]
            views.append(images)
            scores.append(view_distance(images, goal, c.compare_size))
        if not scores:
            return np.zeros(0), np.zeros((0,) + goal.shape, np.uint8)
        return np.concatenate(scores), np.concatenate(views)

    def _out_of_time(self, started):
        budget = self.config.time_budget_s
        return bool(budget) and time.monotonic() - started > budget

    def localise(self, pose, goal, route_map, started=None) -> GoalEstimate | None:
        """Return the GoalEstimate whose imagined view is nearest the goal (None: no candidate)."""
        c = self.config
        started = time.monotonic() if started is None else started
        candidates = self.candidates(pose, route_map)
        if len(candidates) == 0:
            return None
        order = self.rng.permutation(len(candidates))   # a cut-off batch is still spread out
        candidates = candidates[order]
        scores, views = self._score(candidates, goal, started)
        candidates = candidates[:len(scores)]
        if c.refine_top and c.refine_samples and not self._out_of_time(started):
            refined = self._perturb(candidates[np.argsort(scores)[:c.refine_top]], route_map)
            if len(refined):
                more_scores, more_views = self._score(refined, goal, started)
                candidates = np.concatenate([candidates, refined[:len(more_scores)]])
                scores = np.concatenate([scores, more_scores])
                views = np.concatenate([views, more_views])
        best = int(np.argmin(scores))
        return GoalEstimate(candidates[best], float(scores[best]), views[best], len(scores))

    def _perturb(self, poses, route_map):
        c = self.config
        out = []
        for pose in poses:
            z, tilt, yaw = pose[2, 3], tilt_of(pose), base_yaw(pose)
            shifts = self.rng.normal(0.0, c.refine_position, (c.refine_samples, 2))
            turns = self.rng.normal(0.0, c.refine_yaw, c.refine_samples)
            for (dx, dy), turn in zip(shifts, turns):
                out.append(planar_base_pose(pose[0, 3] + dx, pose[1, 3] + dy, yaw + turn, z,
                                            tilt))
        out = np.stack(out)
        if route_map is not None:
            out = out[~route_map.is_blocked(out[:, :2, 3])]
        return out

    # --- final approach ---------------------------------------------------------------------
    def _approach_cost(self, poses, images):
        """Penalty of CEM candidates: blocked poses and distance from the believed goal."""
        c = self.config
        cost = np.zeros(len(poses))
        if self._route_map is not None and c.collision_weight:
            blocked = self._route_map.is_blocked(poses[:, :, :2, 3].reshape(-1, 2))
            cost += c.collision_weight * blocked.reshape(poses.shape[:2]).mean(axis=1)
        if self.estimate is not None and c.goal_weight:
            cost += c.goal_weight * np.linalg.norm(
                poses[:, -1, :2, 3] - self.estimate.pose[:2, 3], axis=1)
        if self.penalty is not None:
            cost += np.asarray(self.penalty(poses, images), np.float64)
        return cost

    def _approach(self, pose, goal, started, common):
        c = self.config
        budget = c.approach.time_budget_s
        if c.time_budget_s:
            left = max(c.time_budget_s - (time.monotonic() - started), 1e-3)
            budget = min(budget, left) if budget else left
        self.approach.config = replace(c.approach, time_budget_s=budget)
        best = self.approach.plan(pose, goal)
        path = np.concatenate([pose[None], best.poses])
        score = float(view_distance(best.final_view[None], goal, c.compare_size)[0])
        blocked = self._route_map is not None and bool(
            self._route_map.is_blocked(best.poses[:, :2, 3]).any())
        return NavigationPlan(path, path[-1], score, best.final_view, not blocked,
                              time.monotonic() - started, 'approach', **common)


# --- a WorldModel behind ``imagine`` -------------------------------------------------------
def world_model_imagine(world_model, base_from_camera, experts=None, steps=None,
                        recall_distance=2.0, batch_size=64, seed=None) -> typing.Callable:
    """
    Return ``imagine(base_poses (N, H, 4, 4)) -> uint8 (N, H, S, S, 3)`` over a WorldModel.

    Base poses become camera poses through ``base_from_camera`` (the camera's extrinsics).
    Paths starting within ``recall_distance`` metres of the newest observed camera are rolled
    out by ``WorldModel.imagine`` from the recent context; farther ones, when ``experts``
    includes a memory expert, are predicted pose by pose from the memories alone
    (``WorldModel.recall``). Without a memory expert every path uses the recent context,
    the only thing such a model has.
    """
    base_from_camera = np.asarray(base_from_camera, np.float64)
    names = tuple(experts or world_model.config.experts)
    has_memory = any(name in MEMORY_EXPERTS for name in names)

    def imagine(base_poses):
        base_poses = np.asarray(base_poses, np.float64)
        if base_poses.ndim != 4 or base_poses.shape[2:] != (4, 4):
            raise ValueError(f'base poses must be (N, H, 4, 4), got {base_poses.shape}')
        cameras = base_poses @ base_from_camera
        count, horizon = cameras.shape[:2]
        far = np.zeros(count, bool)
        newest = world_model.newest_camera_pose() if has_memory else None
        if newest is not None:
            far = np.linalg.norm(cameras[:, 0, :2, 3] - newest[:2, 3], axis=1) > recall_distance
        out = np.zeros((count, horizon, world_model.size, world_model.size, 3), np.uint8)
        near = np.flatnonzero(~far)
        for begin in range(0, len(near), batch_size):
            index = near[begin:begin + batch_size]
            out[index] = world_model.imagine(cameras[index], experts=names, steps=steps,
                                             seed=seed).images
        flat = cameras[far].reshape(-1, 4, 4)
        recalled = [world_model.recall(flat[b:b + batch_size], names, steps, seed)
                    for b in range(0, len(flat), batch_size)]
        if recalled:
            out[far] = np.concatenate(recalled).reshape((-1, horizon) + out.shape[2:])
        return out

    return imagine


def world_model_keyframes(world_model, base_from_camera) -> typing.Callable:
    """Return ``keyframes() -> (M, 4, 4)``: the base poses of a WorldModel's keyframes."""
    camera_from_base = np.linalg.inv(np.asarray(base_from_camera, np.float64))

    def keyframes():
        poses = world_model.episodic.snapshot().pose
        return np.asarray(poses, np.float64).reshape(-1, 4, 4) @ camera_from_base

    return keyframes
