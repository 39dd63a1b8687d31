"""Episodes rendered from the ray-cast box mazes of ``mowm_ros.memory.scenes`` (no simulator)."""

import itertools

from mowm_ros import geometry
from mowm_ros.data.episode import Episode
from mowm_ros.memory.scenes import maze_scene, tour_poses
import numpy as np


def maze_episode(frames, size=(64, 64), rate_hz=10.0, seed=0, speed=1.0):
    """Render ``frames`` RGB-D frames of a camera touring a small maze at ``rate_hz``."""
    width, height = size
    maze = maze_scene(cells=(5, 5), seed=seed)
    poses = list(itertools.islice(tour_poses(maze, speed=speed, rate_hz=rate_hz, laps=8),
                                  frames))
    K = geometry.intrinsics_from_fovy(80.0, width, height)
    rendered = [maze.scene.render(pose, K, width, height) for pose in poses]
    stamps = (np.arange(len(poses), dtype=np.int64) + 1) * int(1e9 / rate_hz)
    return Episode(rgb=np.stack([f.rgb for f in rendered]), pose=np.stack(poses), K=K,
                   stamp=stamps, depth=np.stack([f.depth for f in rendered]),
                   action=np.zeros(len(poses), np.int64),
                   meta={'source': 'maze_scene', 'seed': seed})
