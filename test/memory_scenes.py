"""
Exact synthetic scenes for memory tests: frames ray-cast from coloured boxes, and metrics.

The generator lives in ``mowm_ros.memory.scenes`` (the benchmarks need it too); this module
gathers what tests reuse: ready-made scenes, camera poses inside them, PSNR, and memories with
a known content for persistence tests.
"""

from mowm_ros import geometry
from mowm_ros.memory import voxels
from mowm_ros.memory.episodic import EpisodicBuffer, EpisodicBufferConfig
from mowm_ros.memory.scenes import Box, BoxScene, Frame, maze_scene, room_scene, tour_poses
from mowm_ros.memory.spatial import SpatialMemory
import numpy as np
import torch

__all__ = ['Box', 'BoxScene', 'Frame', 'maze_scene', 'room_scene', 'tour_poses', 'psnr',
           'room_poses', 'room_frames', 'known_memories', 'CAMERA_HEIGHT']

CAMERA_HEIGHT = 0.5


def psnr(image, reference, mask=None):
    """Peak signal-to-noise ratio in dB of uint8 images over ``mask`` (all pixels if None)."""
    mask = np.ones(image.shape[:2], bool) if mask is None else mask
    error = (image[mask].astype(np.float64) - reference[mask].astype(np.float64)) ** 2
    mean = error.mean() if error.size else 0.0
    return float('inf') if mean == 0 else float(10.0 * np.log10(255.0 ** 2 / mean))


def room_poses(count, seed=0, clearance=0.5, scene=None):
    """
    Camera poses spread inside the default room (or ``scene``), looking in varied directions.

    No surface is nearer than ``clearance`` metres in any of four directions around a pose, so
    no view starts inside or against a box.
    """
    scene = scene if scene is not None else room_scene()
    rng = np.random.default_rng(seed)
    K = geometry.intrinsics_from_fovy(60.0, 16, 16)
    poses = []
    while len(poses) < count:
        x, y, yaw = rng.uniform(0.5, 5.5), rng.uniform(0.5, 4.5), rng.uniform(-np.pi, np.pi)
        around = [geometry.camera_pose_from_planar(x, y, yaw + turn, CAMERA_HEIGHT)
                  for turn in (0.0, 0.5 * np.pi, np.pi, 1.5 * np.pi)]
        if all(np.nanmin(scene.render(view, K, 16, 16).depth) >= clearance
               for view in around):
            poses.append(around[0])
    return poses


def room_frames(poses, size=64, fovy_deg=80.0, scene=None):
    """Exact frames of the default room (or ``scene``) seen from ``poses``."""
    scene = scene if scene is not None else room_scene()
    K = geometry.intrinsics_from_fovy(fovy_deg, size, size)
    return [scene.render(pose, K, size, size) for pose in poses]


def known_memories(seed, points=20_000, keyframes=12):
    """
    Spatial memory, episodic buffer and adapter weights whose content is fixed by ``seed``.

    For persistence tests: two calls with the same seed give equal memories.
    """
    rng = np.random.default_rng(seed)
    coordinates = rng.integers(-400, 400, (points, 3))
    keys = np.unique(voxels.pack_keys(coordinates))
    voxel = 0.05
    count = len(keys)
    spatial = SpatialMemory.from_arrays({
        'keys': keys,
        'xyz': ((voxels.unpack_keys(keys) + 0.5) * voxel).astype(np.float32),
        'rgb': rng.integers(0, 256, (count, 3), dtype=np.uint8),
        'last_seen': rng.integers(0, 10**12, count),
        'weight': rng.integers(1, 16, count).astype(np.float32),
        'voxel_size': np.float64(voxel),
        'robot_position': rng.normal(size=3),
        'clock': np.int64(10**12)})
    episodic = EpisodicBuffer(EpisodicBufferConfig(capacity=max(2, keyframes)))
    for index in range(keyframes):
        episodic.add(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
                     geometry.camera_pose_from_planar(index, rng.normal(), rng.normal(), 0.5),
                     index * 1_000_000_000)
    generator = torch.Generator().manual_seed(seed)
    adapter = {'block.0.lora_a': torch.randn(32, 64, generator=generator),
               'block.0.lora_b': torch.randn(64, 32, generator=generator)}
    return spatial, episodic, adapter
