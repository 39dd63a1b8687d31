"""Small synthetic episodes for tests that need one before a simulator is involved."""

from mowm_ros import geometry
from mowm_ros.data.episode import Episode
import numpy as np


def synthetic_episode(frames=6, size=(32, 24), seed=0):
    """Make a short episode: a camera moving and turning, random colours and depth."""
    width, height = size
    rng = np.random.default_rng(seed)
    K = geometry.intrinsics_from_fovy(80.0, width, height)
    poses = np.stack([geometry.camera_pose_from_planar(0.1 * i, 0.0, 0.2 * i, 0.4)
                      for i in range(frames)])
    rgb = rng.integers(0, 256, size=(frames, height, width, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 5.0, size=(frames, height, width)).astype(np.float32)
    stamps = (np.arange(frames, dtype=np.int64) + 1) * 250_000_000
    return Episode(rgb=rgb, pose=poses, K=K, stamp=stamps, depth=depth,
                   action=np.arange(frames, dtype=np.int64) % 3,
                   extras={'revisit': np.zeros(frames, dtype=bool)},
                   meta={'source': 'synthetic', 'seed': seed})
