"""
Memory Maze RGB-D episodes: the simulator, its egocentric camera, and one episode's recording.

The ``memory-maze`` package (dm_control on MuJoCo) renders headless; ``MUJOCO_GL`` must be set
before MuJoCo is imported, so every import of it happens inside ``make_env`` (osmesa unless the
environment already chose a backend). Camera facts (research/deps.md 4a): the egocentric camera
``walker/egocentric`` has ``fovy`` 80 degrees; MuJoCo cameras look along their -z axis with y
up, so the optical pose (z forward, x right, y down) is ``R = cam_xmat @ diag(1, -1, -1)``,
``t = cam_xpos``; depth is planar z in metres and the sky reads as the far plane.
"""

import contextlib
from dataclasses import asdict, dataclass, field
import importlib.metadata
import io
import os
import time

from mowm_ros import geometry
from mowm_ros.data.episode import Episode
from mowm_ros.data.exploration import ACTION_NAMES, ExplorationConfig, ExplorationPolicy
from mowm_ros.data.maze import MazeGrid
from mowm_ros.data.revisit import revisit_labels, RevisitConfig
import numpy as np

GENERATOR = 'mowm_ros.data.maze_env'
GENERATOR_VERSION = '1.0'
MAZE_SIZES = (9, 11, 13, 15)
CAMERA_NAME = 'walker/egocentric'
CONTROL_PERIOD_NS = 250_000_000          # Memory Maze acts at 4 Hz
MAX_VALID_DEPTH = 15.0                   # metres; beyond is the sky (far plane)
NO_ACTION = -1                           # the action "before" an episode's first frame
OPTICAL_FROM_MUJOCO = np.diag([1.0, -1.0, -1.0])


def max_env_steps(maze_size):
    """Return the env steps after which Memory Maze ends an episode (1000 for 9x9)."""
    return 1000 * (MAZE_SIZES.index(maze_size) + 1)


def episode_name(maze_size, seed):
    return f'ep_{maze_size:02d}x{maze_size:02d}_s{seed:06d}.npz'


def check_fovy(degrees):
    """Raise ValueError unless ``degrees`` is a vertical field of view MuJoCo can render."""
    if not 1.0 <= degrees <= 170.0:
        raise ValueError(f'fovy must be 1-170 degrees, got {degrees}')


@dataclass
class GenerationConfig:
    maze_size: int = 9
    steps: int = 1000                 # env steps covered; frames = steps // frame_skip
    frame_skip: int = 1               # store every frame_skip-th env step
    size: int = 64                    # model resolution of rgb and depth
    camera_size: int = 0              # also store rgb_camera/depth_camera at this size (0: no)
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    revisit: RevisitConfig = field(default_factory=RevisitConfig)

    @property
    def frames(self):
        return self.steps // self.frame_skip

    def check(self):
        if self.maze_size not in MAZE_SIZES:
            raise ValueError(f'maze size must be one of {MAZE_SIZES}, got {self.maze_size}')
        if self.frame_skip < 1 or self.size < 8 or self.camera_size < 0:
            raise ValueError('frame_skip must be >= 1, size >= 8 and camera_size >= 0')
        if self.frames < 1:
            raise ValueError(f'steps {self.steps} with frame skip {self.frame_skip} '
                             'leaves no frames')
        limit = max_env_steps(self.maze_size)
        if (self.frames - 1) * self.frame_skip > limit:
            raise ValueError(f'{self.maze_size}x{self.maze_size} episodes end after {limit} '
                             f'env steps; asked for {self.steps}')
        return self

    def params(self):
        """JSON-ready parameters: what an existing episode must match to be reused."""
        return asdict(self)


def make_env(maze_size, seed, size):
    """Return a Memory Maze environment with global observables and no target border."""
    os.environ.setdefault('MUJOCO_GL', 'osmesa')
    # gym prints an "unmaintained" notice on import; it says nothing about this use.
    with contextlib.redirect_stderr(io.StringIO()):
        # lazy: the optional `sim` extra (Memory Maze, dm_control), once MUJOCO_GL is set
        from memory_maze import tasks
    from absl import logging as absl_logging  # lazy: the `sim` extra, as above

    # dm_control warns "Cannot set velocity on Entity with no free joint" on every reset.
    absl_logging.set_verbosity(absl_logging.ERROR)
    factory = getattr(tasks, f'memory_maze_{maze_size}x{maze_size}')
    return factory(seed=seed, global_observables=True, target_color_in_image=False,
                   camera_resolution=size)


class MazeCamera:
    """The egocentric camera of a Memory Maze environment: pose, intrinsics and rendering."""

    def __init__(self, env):
        while hasattr(env, 'env'):
            env = env.env
        self.physics = env.physics
        self.camera_id = self.physics.model.name2id(CAMERA_NAME, 'camera')
        self.fovy = float(self.physics.model.cam_fovy[self.camera_id])

    def pose(self):
        """Return the camera's world <- optical frame transform (4x4)."""
        rotation = self.physics.data.cam_xmat[self.camera_id].reshape(3, 3) @ OPTICAL_FROM_MUJOCO
        return geometry.make_pose(rotation, self.physics.data.cam_xpos[self.camera_id])

    def set_fovy(self, degrees):
        """Change the camera's vertical field of view (a lens other than Memory Maze's)."""
        check_fovy(degrees)
        self.physics.model.cam_fovy[self.camera_id] = degrees
        self.fovy = float(degrees)

    def intrinsics(self, size, height=None):
        """Return the 3x3 intrinsics of a ``size`` x ``height`` render (square by default)."""
        return geometry.intrinsics_from_fovy(self.fovy, size, height or size)

    def render_rgb(self, size, height=None):
        return self.physics.render(height or size, size, camera_id=self.camera_id)

    def render_depth(self, size, height=None):
        depth = self.physics.render(height or size, size, camera_id=self.camera_id, depth=True)
        return np.where(depth <= MAX_VALID_DEPTH, depth, np.nan).astype(np.float32)


def versions():
    found = {}
    for package in ('memory-maze', 'mujoco', 'dm-control'):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = 'unknown'
    return found


class _Recorder:
    """Collect the stored frames of one episode."""

    def __init__(self, config):
        self.config = config
        self.columns = {name: [] for name in ('rgb', 'depth', 'pose', 'agent_pos', 'agent_dir',
                                              'env_step', 'action', 'actions')}
        if config.camera_size:
            self.columns.update(rgb_camera=[], depth_camera=[])

    def record(self, observation, camera, env_step, actions):
        config, columns = self.config, self.columns
        columns['rgb'].append(np.array(observation['image'], dtype=np.uint8))
        columns['depth'].append(camera.render_depth(config.size))
        columns['pose'].append(camera.pose())
        columns['agent_pos'].append(np.array(observation['agent_pos'], dtype=np.float64))
        columns['agent_dir'].append(np.array(observation['agent_dir'], dtype=np.float64))
        columns['env_step'].append(env_step)
        columns['action'].append(actions[-1])
        columns['actions'].append(actions)
        if config.camera_size:
            columns['rgb_camera'].append(camera.render_rgb(config.camera_size))
            columns['depth_camera'].append(camera.render_depth(config.camera_size))

    def arrays(self):
        return {name: np.stack(values) if name not in ('env_step', 'action') else
                np.asarray(values, dtype=np.int64) for name, values in self.columns.items()}


def generate_episode(seed, config=None):
    """
    Run one Memory Maze episode under the exploration policy; return (Episode, stats).

    Deterministic per seed: the maze, the spawn and the policy all derive from ``seed``.
    """
    config = (config or GenerationConfig()).check()
    started = time.perf_counter()
    env = make_env(config.maze_size, seed, config.size)
    try:
        timestep = env.reset()
        camera = MazeCamera(env)
        layout = np.array(timestep.observation['maze_layout'], dtype=np.uint8)
        grid = MazeGrid(layout)
        policy = ExplorationPolicy(grid, seed, config.exploration)
        recorder = _Recorder(config)
        recorder.record(timestep.observation, camera, 0, [NO_ACTION] * config.frame_skip)
        reset_seconds = time.perf_counter() - started
        env_step = 0
        for _ in range(config.frames - 1):
            actions = []
            for _ in range(config.frame_skip):
                observation = timestep.observation
                action = policy.act(observation['agent_pos'], observation['agent_dir'])
                timestep = env.step(action)
                actions.append(action)
                env_step += 1
            recorder.record(timestep.observation, camera, env_step, actions)
        K = camera.intrinsics(config.size)
        K_camera = camera.intrinsics(config.camera_size) if config.camera_size else None
        fovy = camera.fovy
    finally:
        env.close()
    stepping_seconds = time.perf_counter() - started - reset_seconds

    columns = recorder.arrays()
    revisit, overlap, source = revisit_labels(columns['depth'], columns['pose'], K,
                                              columns['env_step'],
                                              config.revisit.min_gap_steps, config.revisit)
    extras = {
        'agent_pos': columns['agent_pos'], 'agent_dir': columns['agent_dir'],
        'maze_layout': layout, 'env_step': columns['env_step'],
        'revisit': revisit, 'revisit_overlap': overlap, 'revisit_source': source,
        'goal_cells': np.array(policy.goals, dtype=np.int64).reshape(-1, 2),
    }
    if config.frame_skip > 1:
        extras['actions_between'] = columns['actions'].astype(np.int64)
    if config.camera_size:
        extras.update(rgb_camera=columns['rgb_camera'], depth_camera=columns['depth_camera'],
                      K_camera=K_camera)
    meta = {
        'generator': GENERATOR, 'generator_version': GENERATOR_VERSION,
        'versions': versions(), 'seed': int(seed), 'params': config.params(),
        'maze_size': config.maze_size, 'steps': config.steps, 'frame_skip': config.frame_skip,
        'image_size': [config.size, config.size],
        'camera_image_size': [config.camera_size, config.camera_size],
        'camera': CAMERA_NAME, 'fovy_deg': fovy, 'max_depth': MAX_VALID_DEPTH,
        'control_period_ns': CONTROL_PERIOD_NS, 'action_names': list(ACTION_NAMES),
        'revisit_fraction': float(revisit.mean()),
    }
    episode = Episode(rgb=columns['rgb'], depth=columns['depth'], pose=columns['pose'], K=K,
                      stamp=columns['env_step'] * CONTROL_PERIOD_NS, action=columns['action'],
                      extras=extras, meta=meta)
    stats = {'seed': int(seed), 'env_steps': env_step, 'reset_seconds': reset_seconds,
             'stepping_seconds': stepping_seconds,
             'revisit_seconds': time.perf_counter() - started - reset_seconds - stepping_seconds,
             'revisit_fraction': float(revisit.mean())}
    return episode, stats
