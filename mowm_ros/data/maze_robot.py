"""
A Memory Maze robot stepped one control period at a time: the simulation behind ``sim_robot``.

``MazeRobot`` wraps one Memory Maze environment (``maze_env.make_env``) and records every state
the way ``generate_episode`` does: the egocentric RGB image, metric depth (NaN beyond the far
plane), the camera pose world <- optical and the intrinsics. It moves by Memory Maze's discrete
actions, chosen by the caller (``twist_to_action`` maps a velocity command to one) or by the
revisiting ``ExplorationPolicy`` of the data generator: for the same maze size and seed,
``explore_action`` drives the very route ``generate_episode`` records.

Memory Maze ends an episode after a fixed time (250 s = 1000 steps for 9x9). A robot should not
vanish mid-run, so that limit is lifted (``time_limit=None``); should the environment still end
an episode (a diverged physics step, or a finite ``time_limit``), the robot respawns in the same
maze (same seed): same layout and spawn, same world frame, so poses stay comparable.
"""

from dataclasses import dataclass
import math

from mowm_ros.data.exploration import (ExplorationConfig, ExplorationPolicy, FORWARD,
                                       FORWARD_LEFT, FORWARD_RIGHT, LEFT, NOOP, RIGHT)
from mowm_ros.data.maze import MazeGrid
from mowm_ros.data.maze_env import (CONTROL_PERIOD_NS, make_env, MAZE_SIZES, MazeCamera,
                                    NO_ACTION)
import numpy as np

ACTION_COUNT = 6


def twist_to_action(linear_x, angular_z, forward_threshold=0.05, turn_threshold=0.1):
    """
    Map a velocity command to Memory Maze's discrete action.

    Forward when ``linear_x`` exceeds ``forward_threshold`` (m/s); a left (right) turn when
    ``angular_z`` exceeds ``turn_threshold`` (is below ``-turn_threshold``, rad/s); both make
    forward_left / forward_right; neither is noop. Memory Maze cannot reverse: a negative
    ``linear_x`` does not move the robot.
    """
    forward = linear_x > forward_threshold
    turn = 1 if angular_z > turn_threshold else -1 if angular_z < -turn_threshold else 0
    if forward:
        return {1: FORWARD_LEFT, -1: FORWARD_RIGHT, 0: FORWARD}[turn]
    return {1: LEFT, -1: RIGHT, 0: NOOP}[turn]


@dataclass
class RobotFrame:
    """One state of the robot, recorded like a frame of ``generate_episode``."""

    step: int                  # env steps since start (0 for the spawn)
    action: int                # the action that led here (NO_ACTION at the spawn)
    rgb: np.ndarray            # uint8 (S, S, 3)
    depth: np.ndarray          # float32 (S, S) metres, NaN invalid; None when not rendered
    pose: np.ndarray           # 4x4 world <- camera optical
    K: np.ndarray              # 3x3 intrinsics
    agent_pos: np.ndarray      # grid coordinates (cells)
    agent_dir: np.ndarray      # unit heading (x, y)
    respawned: bool = False    # the environment ended and the robot started again


class MazeRobot:
    """
    A Memory Maze robot: step it with discrete actions, read back what its camera sees.

    ``maze_size`` is one of 9, 11, 13, 15; ``seed`` fixes the maze, the spawn and the
    exploration route; ``image_size`` is the side of the square RGB and depth images;
    ``depth=False`` skips the depth render. ``time_limit`` (seconds of simulated time, None for
    none; may be changed between steps) sets an episode limit after which the robot respawns.
    """

    def __init__(self, maze_size=9, seed=0, image_size=64, depth=True, exploration=None,
                 time_limit=None):
        if maze_size not in MAZE_SIZES:
            raise ValueError(f'maze_size must be one of {MAZE_SIZES}, got {maze_size}')
        if not 8 <= int(image_size) <= 4096:
            raise ValueError(f'image_size must be 8-4096 pixels, got {image_size}')
        if seed < 0:
            raise ValueError(f'seed must be non-negative, got {seed}')
        self.maze_size = int(maze_size)
        self.seed = int(seed)
        self.image_size = int(image_size)
        self.render_depth = bool(depth)
        self.exploration = exploration or ExplorationConfig()
        self.time_limit = math.inf if time_limit is None else float(time_limit)
        self.control_period_ns = CONTROL_PERIOD_NS
        self.steps = 0
        self.respawns = 0
        self.env = None
        self._start()

    def _start(self, respawned=False):
        """Build the maze and spawn the robot (again: same seed, same maze and spawn)."""
        self.env = make_env(self.maze_size, self.seed, self.image_size)
        # lazy: the optional `sim` extra, importable once make_env has set MUJOCO_GL
        from dm_control.rl.control import PhysicsError

        self._physics_error = PhysicsError
        self.timestep = self.env.reset()
        composer_env = self.env
        while hasattr(composer_env, 'env'):
            composer_env = composer_env.env
        # dm_control's composer.Environment ends an episode once physics time reaches its time
        # limit, which Memory Maze's task factories fix; lift it (``step`` applies our own).
        composer_env._time_limit = math.inf
        self.camera = MazeCamera(self.env)
        self.K = self.camera.intrinsics(self.image_size)
        observation = self.timestep.observation
        self.grid = MazeGrid(np.array(observation['maze_layout'], dtype=np.uint8))
        self.policy = ExplorationPolicy(self.grid, self.seed, self.exploration)
        self.frame = self._record(NO_ACTION, respawned)

    def _record(self, action, respawned=False):
        observation = self.timestep.observation
        return RobotFrame(
            step=self.steps, action=int(action),
            rgb=np.array(observation['image'], dtype=np.uint8),
            depth=self.camera.render_depth(self.image_size) if self.render_depth else None,
            pose=self.camera.pose(), K=self.K.copy(),
            agent_pos=np.array(observation['agent_pos'], dtype=np.float64),
            agent_dir=np.array(observation['agent_dir'], dtype=np.float64),
            respawned=respawned)

    def explore_action(self):
        """Return the exploration policy's action for the current state (advances its plan)."""
        observation = self.timestep.observation
        return int(self.policy.act(observation['agent_pos'], observation['agent_dir']))

    def step(self, action):
        """Apply one discrete action for one control period; return the new RobotFrame."""
        action = int(action)
        if not 0 <= action < ACTION_COUNT:
            raise ValueError(f'action must be 0-{ACTION_COUNT - 1}, got {action}')
        self.steps += 1
        try:
            self.timestep = self.env.step(action)
            ended = self.timestep.last() or self.camera.physics.time() >= self.time_limit
        except self._physics_error:
            ended = True                     # the simulation diverged
        if ended:
            self.env.close()
            self.respawns += 1
            self._start(respawned=True)
        else:
            self.frame = self._record(action)
        return self.frame

    def close(self):
        if self.env is not None:
            self.env.close()
            self.env = None
