"""
Observation while rollouts run: ``python bench/observe_bench.py [--size 160] [--frames 180]``.

A rollout takes the context and a frozen copy of the spatial memory under the lock that
``observe`` holds while it adds a frame (``WorldModel.rollout_state``), so ``observe`` may wait
for that copy. This feeds RGB-D frames of a synthetic room to the shipped checkpoint's world
model at about 30 Hz, once alone and once while another thread runs ``imagine`` in a loop, and
prints the time each ``observe`` took, and the time ``SpatialMemory.view()`` takes to copy a
memory of a million points.
"""

import argparse
import threading
import time

from mowm_ros import geometry
from mowm_ros.memory import scenes, voxels
from mowm_ros.memory.spatial import SpatialMemory, SpatialMemoryConfig
from mowm_ros.world_model import Frame, WorldModel, WorldModelConfig
import numpy as np
import torch


def view_copy_ms(points=1_000_000, repeat=20):
    """Return the milliseconds of each ``view()`` of a memory holding ``points`` points."""
    rng = np.random.default_rng(0)
    keys = np.unique(voxels.pack_keys(rng.integers(0, 400, (int(points * 1.05), 3))))[:points]
    arrays = {'keys': keys, 'xyz': rng.uniform(0, 20, (len(keys), 3)).astype(np.float32),
              'rgb': rng.integers(0, 255, (len(keys), 3), dtype=np.uint8),
              'last_seen': np.zeros(len(keys), np.int64),
              'weight': np.ones(len(keys), np.float32), 'voxel_size': np.float64(0.05),
              'robot_position': np.zeros(3), 'clock': np.int64(0)}
    memory = SpatialMemory.from_arrays(arrays, SpatialMemoryConfig(max_points=2 * points))
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        memory.view()
        times.append(1000 * (time.perf_counter() - start))
    return np.array(times)


def observe_ms(model, frames, future, rollouts):
    """Observe ``frames`` about 30 Hz, with rollouts in a thread or not; return (ms, rollouts)."""
    stop, count = threading.Event(), [0]

    def loop():
        while not stop.is_set():
            model.imagine(future)
            count[0] += 1

    thread = threading.Thread(target=loop)
    if rollouts:
        thread.start()
    times = []
    for frame in frames:
        frame.stamp = time.time_ns()
        start = time.perf_counter()
        model.observe(frame)
        times.append(1000 * (time.perf_counter() - start))
        time.sleep(0.02)
    stop.set()
    if rollouts:
        thread.join()
    return np.array(times), count[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', type=int, default=160, help='frame side, pixels')
    parser.add_argument('--frames', type=int, default=180, help='frames observed per run')
    parser.add_argument('--threads', type=int, default=1, help='torch threads')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    copies = view_copy_ms()
    print(f'view() of 1,000,000 points: median {np.median(copies):.1f} ms, '
          f'max {copies.max():.1f} ms')
    room = scenes.room_scene(seed=0)
    K = geometry.intrinsics_from_fovy(80.0, args.size, args.size)
    frames = []
    for i in range(args.frames + 24):
        pose = geometry.camera_pose_from_planar(1.0 + 0.01 * (i % 300), 1.5, 0.05 * i, 0.8)
        view = room.render(pose, K, args.size, args.size)
        frames.append(Frame(rgb=view.rgb, pose=pose, K=K, stamp=i + 1, depth=view.depth))
    model = WorldModel(WorldModelConfig(device='cpu', finetune_on_observe=False))
    try:
        for frame in frames[:20]:
            model.observe(frame)
        future = np.stack([f.pose for f in frames[20:24]])
        for rollouts in (False, True):
            times, count = observe_ms(model, frames[24:], future, rollouts)
            print(f'observe {"with" if rollouts else "without"} rollouts ({count} ran): median '
                  f'{np.median(times):.1f} ms, p90 {np.percentile(times, 90):.1f} ms, max '
                  f'{times.max():.1f} ms')
    finally:
        model.close()


if __name__ == '__main__':
    main()
