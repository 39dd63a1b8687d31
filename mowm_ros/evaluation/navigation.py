"""
Closed-loop image-goal navigation in Memory Maze: ``mowm eval navigation``.

Per maze (held-out seeds from 200,000; training used 0-23, the memory benchmark 100,000 on)
a MazeRobot explores with the data generator's revisiting explorer for ``explore_steps`` env
steps while a WorldModel observes every frame (spatial memory, short-term context, episodic
keyframes with test-time finetuning, caught up at the end). Then for each of
``goals_per_maze`` goals, the RGB of an exploration frame taken at least ``min_goal_distance``
metres (shortest path through the maze) from where the robot stands, every row starts from
that same state (the physics, the robot and the memories are restored) and drives for at most
``step_budget`` env steps:

- ``world model, all experts``: ImageGoalNavigator with the short-term, episodic and spatial
  experts imagining; it plans every ``replan_every`` steps, a pure-pursuit PathFollower turns
  the path into (v, w), ``twist_to_action`` into Memory Maze's discrete action, and every new
  frame is observed (the memory keeps growing; the adapters stay as exploration left them).
- ``world model, no memory``: the same navigator and the same map for routing, but the views
  are imagined by the short-term expert alone: what memory adds to imagination.
- ``non-learned baseline``: the revisiting explorer goes on for the whole budget; it never
  sees the goal image.

An episode succeeds when the robot stops (the navigator says it arrived, or the budget ends)
within ``goal_radius`` of where the goal frame was taken. Each (maze, goal) result is one JSON
file under ``per_episode/``, written atomically; a rerun skips finished ones.
"""

import copy
from dataclasses import asdict, dataclass, field
import json
import logging
import math
from pathlib import Path
import shutil
import tempfile
import time

from mowm_ros import geometry
from mowm_ros.atomic import atomic_write
from mowm_ros.data.maze_env import CONTROL_PERIOD_NS
from mowm_ros.data.maze_robot import MazeRobot, twist_to_action
from mowm_ros.extrinsics import CAMERA_MOUNT, extrinsics_matrix
from mowm_ros.model.experts import EXPERT_NAMES
from mowm_ros.model.finetune import FinetuneConfig
from mowm_ros.planning.follower import PathFollower, PathFollowerConfig
from mowm_ros.planning.navigator import (ImageGoalNavigator, NavigatorConfig, world_model_imagine,
                                         world_model_keyframes)
from mowm_ros.planning.paths import base_yaw
from mowm_ros.world_model import Frame, WorldModel, WorldModelConfig
import numpy as np
from scipy import ndimage
from skimage.graph import MCP_Geometric
from tqdm import tqdm

log = logging.getLogger(__name__)

RESULT_FORMAT = 2
NAVIGATION_SEED_START = 200_000
ROW_NAMES = {'all': 'world model, all experts', 'no_memory': 'world model, no memory',
             'explore': 'non-learned baseline'}
ROW_EXPERTS = {'all': EXPERT_NAMES, 'no_memory': ('short_term',)}


def _navigator_defaults():
    return NavigatorConfig(candidate_spacing=1.5, candidate_yaws=8, max_candidates=512,
                           refine_top=4, refine_samples=8, approach_distance=0.0)


@dataclass
class NavEvalConfig:
    out_dir: str = 'runs/nav_eval'
    checkpoint: str = ''                # '' = the shipped checkpoint
    device: str = 'auto'
    mazes: int = 6
    goals_per_maze: int = 2
    seed_start: int = NAVIGATION_SEED_START
    maze_size: int = 9
    explore_steps: int = 300            # env steps of exploration (0.25 s each)
    step_budget: int = 120              # env steps to reach a goal
    replan_every: int = 4               # env steps between plans
    goal_radius: float = 1.0            # m: success radius around the goal frame's position
    min_goal_distance: float = 6.0      # m by the maze's shortest path from the robot
    goal_min_depth: float = 1.0         # m: median depth of a goal view (no wall close-ups)
    sampler_steps: int = 2              # DDIM steps of every imagined view
    recall_distance: float = 2.0        # m: farther views are imagined from memory alone
    finetune_steps_per_keyframe: int = 1
    finetune_backlog: int = 16          # finetuning steps owed at most (older ones dropped)
    lookahead: float = 0.6              # m, path follower
    bf16: bool = True
    seed: int = 0
    rows: tuple = ('all', 'no_memory', 'explore')
    navigator: NavigatorConfig = field(default_factory=_navigator_defaults)
    shard: tuple = (0, 1)

    def __post_init__(self):
        self.rows = tuple(self.rows)
        unknown = set(self.rows) - set(ROW_NAMES)
        if unknown or not self.rows:
            raise ValueError(f'rows must be among {sorted(ROW_NAMES)}, got {list(self.rows)}')
        for name in ('mazes', 'goals_per_maze', 'explore_steps', 'step_budget', 'replan_every',
                     'sampler_steps'):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f'{name} must be an integer >= 1, got {getattr(self, name)!r}')
        for name in ('goal_radius', 'min_goal_distance', 'goal_min_depth', 'recall_distance',
                     'lookahead'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f'{name} must be a finite number >= 0, got {value!r}')
        if self.goal_radius <= 0:
            raise ValueError(f'goal_radius must be > 0, got {self.goal_radius}')
        if not (len(self.shard) == 2 and 0 <= self.shard[0] < self.shard[1]):
            raise ValueError(f'shard must be (index, count) with 0 <= index < count, got '
                             f'{self.shard}')
        if self.finetune_steps_per_keyframe < 0:
            raise ValueError('finetune_steps_per_keyframe must be >= 0')

    @property
    def seeds(self):
        return list(range(self.seed_start, self.seed_start + self.mazes))

    @property
    def shard_seeds(self):
        index, count = self.shard
        return self.seeds[index::count]

    @property
    def episode_dir(self):
        return Path(self.out_dir) / 'per_episode'

    def signature(self):
        """Return the settings a finished result must match to be reused."""
        settings = asdict(self)
        for name in ('out_dir', 'mazes', 'shard', 'device'):
            settings.pop(name)
        settings['format'] = RESULT_FORMAT
        return json.loads(json.dumps(settings))


def result_path(config, seed, goal):
    return config.episode_dir / f'seed_{seed:06d}_goal_{goal}.json'


def load_result(config, seed, goal):
    """Return the finished result of (seed, goal) when it matches the settings, else None."""
    path = result_path(config, seed, goal)
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if result.get('signature') != config.signature():
        log.warning('%s was computed with other settings; running it again', path.name)
        return None
    return result


def finished_results(config):
    """Return every finished (maze, goal) result of the configured seeds, in order."""
    found = (load_result(config, seed, goal) for seed in config.seeds
             for goal in range(config.goals_per_maze))
    return [result for result in found if result is not None]


# --- the maze's geometry ---------------------------------------------------------------------
def base_from_camera():
    """Return the Memory Maze camera's mount (base <- optical) as a 4x4 matrix."""
    return extrinsics_matrix(CAMERA_MOUNT)


def maze_distances(maze, start_xy, resolution=0.1, clearance=0.25):
    """
    Return ``distance(xy (N, 2)) -> (N,)``: shortest-path metres from ``start_xy`` in the maze.

    The maze's free cells are rasterised at ``resolution`` and shrunk by ``clearance`` (about
    the robot's radius); a point in a wall or unreachable is infinitely far.
    """
    scale = int(round(maze.cell_size / resolution))
    free = np.kron(maze.layout.astype(bool), np.ones((scale, scale), bool))
    free &= ndimage.distance_transform_edt(free) * resolution > clearance
    costs = np.where(free, 1.0, np.inf)
    origin = maze.world_from_grid(np.zeros(2))

    def cell(xy):
        index = np.floor((np.asarray(xy, np.float64).reshape(-1, 2) - origin)
                         / resolution).astype(np.int64)
        rows = np.clip(index[:, 1], 0, free.shape[0] - 1)
        return rows, np.clip(index[:, 0], 0, free.shape[1] - 1)

    rows, cols = cell(start_xy)
    start = (int(rows[0]), int(cols[0]))
    if not free[start]:
        _, (near_rows, near_cols) = ndimage.distance_transform_edt(~free, return_indices=True)
        start = int(near_rows[start]), int(near_cols[start])
    travelled, _ = MCP_Geometric(costs, fully_connected=True).find_costs([start])
    travelled = travelled * resolution

    def distance(xy):
        rows, cols = cell(xy)
        return travelled[rows, cols]

    return distance


def choose_goals(frames, start_xy, maze, config, rng):
    """
    Return indices of ``goals_per_maze`` exploration frames to use as goals.

    A goal is a frame whose view is not a wall close-up (median depth >= goal_min_depth), taken
    at least ``min_goal_distance`` from the robot by the maze's shortest path and at least one
    goal radius from the other goals; the nearest eligible ones are used when too few qualify.
    """
    camera_from_base = geometry.invert_pose(base_from_camera())
    positions = np.stack([(f['pose'] @ camera_from_base)[:2, 3] for f in frames])
    depth_ok = np.array([f['median_depth'] >= config.goal_min_depth for f in frames])
    distance = maze_distances(maze, start_xy)(positions)
    distance = np.where(np.isfinite(distance), distance, -1.0)
    eligible = np.flatnonzero(depth_ok & (distance >= config.min_goal_distance))
    fallback = np.flatnonzero(depth_ok & (distance >= 0) & (distance < config.min_goal_distance))
    fallback = fallback[np.argsort(-distance[fallback])]
    order = np.concatenate([rng.permutation(eligible), fallback])
    chosen = []
    for index in order:
        if all(np.linalg.norm(positions[index] - positions[c]) >= 2 * config.goal_radius
               for c in chosen):
            chosen.append(int(index))
        if len(chosen) == config.goals_per_maze:
            break
    return chosen, distance


# --- restoring a state -----------------------------------------------------------------------
class RobotState:
    """The MazeRobot's physics and bookkeeping at one moment, restored exactly."""

    def __init__(self, robot):
        self.physics = robot.camera.physics.get_state().copy()
        self.fields = {name: copy.deepcopy(getattr(robot, name))
                       for name in ('frame', 'timestep', 'steps', 'policy')}

    def restore(self, robot):
        physics = robot.camera.physics
        with physics.reset_context():
            physics.set_state(self.physics)
        for name, value in self.fields.items():
            setattr(robot, name, copy.deepcopy(value))


class ModelState:
    """A WorldModel's memories and adapters (a snapshot on disk) and its recent context."""

    def __init__(self, model, directory):
        self.directory = Path(directory)
        model.save(self.directory)
        self.context = model.recent_context()

    def restore(self, model):
        model.reset()
        model.load(self.directory)
        model.restore_recent_context(self.context)


# --- one episode -----------------------------------------------------------------------------
def make_world_model(config):
    return WorldModel(WorldModelConfig(
        checkpoint=str(config.checkpoint), device=config.device,
        sampler_steps=config.sampler_steps, experts=ROW_EXPERTS['all'], bf16=config.bf16,
        seed=config.seed,
        finetune=FinetuneConfig(steps_per_keyframe=config.finetune_steps_per_keyframe,
                                max_pending_steps=config.finetune_backlog)))


def _frame(robot_frame, stamp):
    return Frame(rgb=robot_frame.rgb, pose=robot_frame.pose, K=robot_frame.K, stamp=stamp,
                 depth=robot_frame.depth)


def _stamp(step):
    return int(step) * CONTROL_PERIOD_NS


def explore(robot, model, steps):
    """Drive the revisiting explorer, feeding the model; return the frames seen (pose, rgb)."""
    frames = []
    for _ in range(steps):
        frame = robot.step(robot.explore_action())
        model.observe(_frame(frame, _stamp(frame.step)))
        depth = frame.depth[np.isfinite(frame.depth)] if frame.depth is not None else []
        frames.append({'step': frame.step, 'pose': frame.pose, 'rgb': frame.rgb,
                       'median_depth': float(np.median(depth)) if len(depth) else 0.0})
    model.finetuner.wait_idle()
    return frames


def _base_xy(robot, camera_from_base):
    return (robot.frame.pose @ camera_from_base)[:2, 3].copy()


def drive_with_navigator(robot, model, row, goal_rgb, config):
    """Navigate with the world model towards ``goal_rgb``; return the trajectory and plans."""
    mount = base_from_camera()
    camera_from_base = geometry.invert_pose(mount)
    c = config.navigator
    imagine = world_model_imagine(model, mount, experts=ROW_EXPERTS[row],
                                  steps=config.sampler_steps,
                                  recall_distance=config.recall_distance, seed=config.seed)
    navigator = ImageGoalNavigator(
        imagine,
        lambda: model.occupancy_grid(resolution=c.grid_resolution, z_min=c.z_min,
                                     z_max=c.z_max),
        c, keyframes=world_model_keyframes(model, mount))
    follower = PathFollower(PathFollowerConfig(lookahead_m=config.lookahead,
                                               goal_tolerance_m=0.8 * c.arrive_distance))
    trajectory = [_base_xy(robot, camera_from_base)]
    decisions, plan, since, reason, first = [], None, 0, 'budget', None
    steps = stuck = 0
    while steps < config.step_budget:
        base = robot.frame.pose @ camera_from_base
        if plan is None or since >= config.replan_every:
            plan = navigator.plan(base, goal_rgb)
            decisions.append({'seconds': plan.seconds, 'stage': plan.stage,
                              'views': plan.views_scored, 'reachable': plan.reachable})
            first = first or plan
            since = 0
            if plan.arrived:
                reason = 'arrived'
                break
        try:
            linear, angular, done = follower.command(base, plan.path)
        except ValueError:          # a path without length: the robot is at its end
            linear, angular, done = 0.0, 0.0, True
        if done:                    # at the end of the path but not arrived: plan again
            stuck += 1
            if stuck > 2:           # the plan leads no farther
                reason = 'no route'
                break
            plan = None
            continue
        stuck = 0
        frame = robot.step(twist_to_action(linear, angular))
        model.observe(_frame(frame, _stamp(frame.step)))
        trajectory.append(_base_xy(robot, camera_from_base))
        since += 1
        steps += 1
    believed = navigator.estimate.pose if navigator.estimate is not None else None
    yaw = None if believed is None else base_yaw(believed)
    return {'trajectory': trajectory, 'decisions': decisions, 'reason': reason,
            'believed_goal': None if believed is None else believed[:2, 3].tolist(),
            'believed_yaw': yaw,
            'localisation_views': first.views_scored if first else 0,
            'localisation_score': None if first is None else first.score}


def drive_explorer(robot, config):
    """Let the revisiting explorer drive on for the whole budget (the non-learned baseline)."""
    camera_from_base = geometry.invert_pose(base_from_camera())
    trajectory = [_base_xy(robot, camera_from_base)]
    for _ in range(config.step_budget):
        robot.step(robot.explore_action())
        trajectory.append(_base_xy(robot, camera_from_base))
    return {'trajectory': trajectory, 'decisions': [], 'reason': 'budget',
            'believed_goal': None, 'believed_yaw': None, 'localisation_views': 0,
            'localisation_score': None}


def score_drive(drive, goal_xy, goal_yaw, shortest, config):
    """Add the metrics of one drive: success, distances, path length, SPL, planning time."""
    trajectory = np.asarray(drive['trajectory'])
    distances = np.linalg.norm(trajectory - goal_xy, axis=1)
    length = float(np.linalg.norm(np.diff(trajectory, axis=0), axis=1).sum())
    success = bool(distances[-1] <= config.goal_radius)
    seconds = [d['seconds'] for d in drive['decisions']]
    metrics = {
        'success': success, 'final_distance': float(distances[-1]),
        'min_distance': float(distances.min()),
        'came_within_radius': bool(distances.min() <= config.goal_radius),
        'path_length': length, 'steps': len(trajectory) - 1,
        'spl': float(success * shortest / max(length, shortest)) if shortest > 0 else 0.0,
        'decisions': len(seconds),
        'planning_ms': 1000.0 * float(np.mean(seconds)) if seconds else None,
        'planning_ms_after_first': (1000.0 * float(np.mean(seconds[1:]))
                                    if len(seconds) > 1 else None),
        'localisation_ms': 1000.0 * seconds[0] if seconds else None,
        'localisation_error': None, 'localisation_yaw_error': None,
    }
    if drive['believed_goal'] is not None:
        metrics['localisation_error'] = float(np.linalg.norm(
            np.asarray(drive['believed_goal']) - goal_xy))
        metrics['localisation_yaw_error'] = abs(math.remainder(
            drive['believed_yaw'] - goal_yaw, 2 * math.pi))
    drive = dict(drive, trajectory=np.round(trajectory, 3).tolist())
    return dict(drive, **metrics)


def evaluate_maze(config, seed, goals_todo, progress=None):
    """Explore maze ``seed`` once and run every row to each goal in ``goals_todo``."""
    started = time.perf_counter()
    camera_from_base = geometry.invert_pose(base_from_camera())
    robot = MazeRobot(config.maze_size, seed)
    model = make_world_model(config)
    work = Path(tempfile.mkdtemp(prefix=f'.work_{seed}_', dir=config.out_dir))
    results = {}
    try:
        frames = explore(robot, model, config.explore_steps)
        explored = {'seconds': time.perf_counter() - started, 'keyframes': len(model.episodic),
                    'points': len(model.spatial), 'finetune_steps': model.finetuner.steps_done}
        model.config.finetune_on_observe = False     # adapters stay as exploration left them
        robot_state = RobotState(robot)
        model_state = ModelState(model, work / 'memory')
        start_xy = _base_xy(robot, camera_from_base)
        start_yaw = geometry.camera_forward_yaw(robot.frame.pose)
        rng = np.random.default_rng([seed, config.seed])
        goals, distance = choose_goals(frames, start_xy, robot.grid, config, rng)
        for goal_index in goals_todo:
            if goal_index >= len(goals):
                log.warning('maze %d has only %d usable goals', seed, len(goals))
                continue
            frame = frames[goals[goal_index]]
            goal_base = frame['pose'] @ camera_from_base
            goal_xy = goal_base[:2, 3]
            goal_yaw = base_yaw(goal_base)
            shortest = float(distance[goals[goal_index]])
            rows = {}
            for row in config.rows:
                tick = time.perf_counter()
                robot_state.restore(robot)
                if row == 'explore':
                    drive = drive_explorer(robot, config)
                else:
                    model_state.restore(model)
                    drive = drive_with_navigator(robot, model, row, frame['rgb'], config)
                rows[ROW_NAMES[row]] = dict(score_drive(drive, goal_xy, goal_yaw, shortest,
                                                        config),
                                            wall_seconds=time.perf_counter() - tick)
                if progress is not None:
                    progress(seed, goal_index, row)
            results[goal_index] = {
                'seed': seed, 'goal': goal_index, 'signature': config.signature(),
                'goal_frame': frame['step'], 'goal_xy': goal_xy.tolist(), 'goal_yaw': goal_yaw,
                'goal_rgb': frame['rgb'].tolist(), 'start_xy': start_xy.tolist(),
                'start_yaw': start_yaw, 'shortest_path': shortest,
                'layout': robot.grid.layout.tolist(), 'cell_size': robot.grid.cell_size,
                'exploration': explored, 'rows': rows,
                'row_order': [ROW_NAMES[row] for row in config.rows],
                'wall_seconds': time.perf_counter() - started}
            atomic_write(result_path(config, seed, goal_index),
                         lambda f: json.dump(results[goal_index], f, indent=1), 'w')
    finally:
        model.close()
        robot.close()
        shutil.rmtree(work, ignore_errors=True)
    return results


def run_navigation(config, progress=True):
    """Evaluate every (maze, goal) not finished yet; return all finished results."""
    Path(config.out_dir).mkdir(parents=True, exist_ok=True)
    todo = {}
    for seed in config.shard_seeds:
        missing = [g for g in range(config.goals_per_maze)
                   if load_result(config, seed, g) is None]
        if missing:
            todo[seed] = missing
    total = len(config.shard_seeds) * config.goals_per_maze * len(config.rows)
    done = total - sum(len(goals) for goals in todo.values()) * len(config.rows)
    bar = tqdm(total=total, initial=done, unit='drive', desc='navigation',
               disable=not progress)

    def advance(seed, goal, row):
        bar.update()
        bar.set_postfix(seed=str(seed), goal=goal, row=row)

    try:
        for seed, goals in todo.items():
            bar.set_postfix(seed=str(seed), stage='explore')
            evaluate_maze(config, seed, goals, advance)
    finally:
        bar.close()
    return finished_results(config)
