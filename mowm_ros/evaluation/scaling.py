"""
The scaling claim, measured: per-frame latency and memory after 100, 1,000, 10,000 frames.

``mowm bench scaling``. A WorldModel observes a long walk through a synthetic RGB-D maze
(exact ray-cast frames, 4 Hz, 1 m/s, so 10,000 frames cover 2.5 km and revisit every corridor)
and, each time the observed count reaches a checkpoint, times ``imagine()`` (all three experts
and the short-term expert alone, the same horizon and sampler steps), one test-time finetuning
step on the whole episodic buffer, and reads the resident memory. History lives in fixed-size
adapters, a point cloud capped at ``max_points`` and a keyframe buffer capped at its capacity,
so every one of these should stay flat once the caps are reached.
"""

from dataclasses import replace
import json
from pathlib import Path
import platform
import statistics
import tempfile
import time

from mowm_ros import geometry
from mowm_ros.benchmarks.memory import rss_mb
from mowm_ros.benchmarks.model import percentile_summary, random_checkpoint
from mowm_ros.evaluation.report import save_small_png
from mowm_ros.memory import scenes
from mowm_ros.memory.spatial import SpatialMemory
from mowm_ros.world_model import Frame, WorldModel, WorldModelConfig
import numpy as np
import torch

EXPERT_SETS = {'all three': ('short_term', 'episodic', 'spatial'),
               'short_term': ('short_term',)}
SECOND = 1_000_000_000


def maze_frames(size, rate_hz, cells, seed=0):
    """Yield world_model Frames walking a synthetic maze tour forever (laps back and forth)."""
    maze = scenes.maze_scene(cells, cell_size=3.0, seed=seed)
    K = geometry.intrinsics_from_fovy(80.0, size, size)
    for index, pose in enumerate(scenes.tour_poses(maze, speed=1.0, rate_hz=rate_hz,
                                                   laps=100_000)):
        view = maze.scene.render(pose, K, size, size)
        yield Frame(rgb=view.rgb, pose=pose, K=K, stamp=int(round(index * SECOND / rate_hz)),
                    depth=view.depth)


def time_imagine(model, poses, experts, steps, repeats):
    model.imagine(poses[:1], experts=experts, steps=steps)     # warm-up
    per_frame = []
    for _ in range(repeats):
        tick = time.perf_counter()
        model.imagine(poses, experts=experts, steps=steps)
        per_frame.append(1000.0 * (time.perf_counter() - tick) / len(poses))
    return percentile_summary(per_frame)


def bench(args):
    checkpoints = sorted(set(args.frames))
    temporary = None
    checkpoint = args.checkpoint
    if checkpoint == 'random':
        temporary = tempfile.TemporaryDirectory()
        checkpoint = str(random_checkpoint(Path(temporary.name)))
    # The synthetic scene's ray caster (open3d) holds several hundred MiB of its own: build it
    # and render once first, so the world model's share of the RSS can be told apart.
    frames = maze_frames(args.size, args.rate_hz, (args.maze_cells, args.maze_cells))
    pending = [next(frames)]
    rss_before_model = rss_mb()
    model = WorldModel(WorldModelConfig(checkpoint=checkpoint, device=args.device,
                                        finetune_on_observe=False))
    if args.max_points:
        model.config.spatial = replace(model.config.spatial, max_points=args.max_points)
        model.spatial = SpatialMemory(model.config.spatial)
    rows = []
    observed = 0
    observe_times = []
    started = time.perf_counter()
    try:
        for target in checkpoints:
            while observed < target:
                frame = pending.pop() if pending else next(frames)
                tick = time.perf_counter()
                model.observe(frame)
                observe_times.append(time.perf_counter() - tick)
                observed += 1
            poses = np.stack([frame.pose] * args.horizon)
            keyframes = model.keyframes()
            if not rows:
                model.finetuner.train_step(keyframes)     # warm-up
            finetune = []
            for _ in range(args.repeats):
                tick = time.perf_counter()
                model.finetuner.train_step(keyframes)
                finetune.append(1000.0 * (time.perf_counter() - tick))
            model.finetuner.publish(len(keyframes.rgb))
            row = {'frames': observed, 'points': len(model.spatial),
                   'keyframes': len(model.episodic),
                   'observe_ms': 1000.0 * statistics.median(observe_times),
                   'finetune_step_ms': percentile_summary(finetune)}
            for name, experts in EXPERT_SETS.items():
                row[name] = time_imagine(model, poses, experts, args.steps, args.repeats)
            row['rss_mb'] = rss_mb()
            row['world_model_rss_mb'] = row['rss_mb'] - rss_before_model
            rows.append(row)
            observe_times = []
    finally:
        model.close()
        if temporary is not None:
            temporary.cleanup()
    return {'rows': rows, 'device': str(model.device), 'threads': torch.get_num_threads(),
            'cpu': platform.processor() or platform.machine(), 'bf16': model.config.bf16,
            'checkpoint': str(model.checkpoint_dir), 'frame_size': args.size,
            'rate_hz': args.rate_hz, 'sampler_steps': args.steps, 'horizon': args.horizon,
            'rss_before_model_mb': rss_before_model,
            'max_points': model.spatial.config.max_points,
            'keyframe_capacity': model.episodic.config.capacity,
            'wall_seconds': time.perf_counter() - started}


def markdown(result):
    lines = ['| frames observed | ms / frame, all three (p25-p75) | ms / frame, short-term | '
             'finetuning step ms | RSS MiB (world model share) | points | keyframes | '
             'observe ms / frame |', '|---|---|---|---|---|---|---|---|']
    for row in result['rows']:
        everything, short = row['all three'], row['short_term']
        lines.append(
            f"| {row['frames']:,} | {everything['median']:.0f} ({everything['p25']:.0f}-"
            f"{everything['p75']:.0f}) | {short['median']:.0f} | "
            f"{row['finetune_step_ms']['median']:.0f} | {row['rss_mb']:.0f} "
            f"({row['world_model_rss_mb']:.0f}) | "
            f"{row['points']:,} | {row['keyframes']:,} | {row['observe_ms']:.1f} |")
    lines.append(f"\n{result['frame_size']}x{result['frame_size']} RGB-D at "
                 f"{result['rate_hz']:g} Hz; caps: {result['max_points']:,} points, "
                 f"{result['keyframe_capacity']:,} keyframes; {result['sampler_steps']} "
                 f"sampler steps; device {result['device']}, {result['threads']} threads; "
                 'RSS before the world model (scene ray caster, libraries) '
                 f"{result['rss_before_model_mb']:.0f} MiB")
    return '\n'.join(lines)


def plot(result, path):
    # lazy: matplotlib is slow to import; its Agg backend is chosen only to plot
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # lazy: after choosing the backend

    frames = [row['frames'] for row in result['rows']]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    for name in EXPERT_SETS:
        left.plot(frames, [row[name]['median'] for row in result['rows']], 'o-', label=name)
    left.plot(frames, [row['finetune_step_ms']['median'] for row in result['rows']], 's--',
              label='finetuning step')
    left.set_ylabel('ms')
    left.set_title('latency per predicted frame')
    left.set_ylim(bottom=0)
    left.legend(fontsize=8)
    right.plot(frames, [row['rss_mb'] for row in result['rows']], 'o-', label='process')
    right.plot(frames, [row['world_model_rss_mb'] for row in result['rows']], 's--',
               label='world model share')
    right.set_ylabel('MiB')
    right.set_title('resident memory')
    right.legend(fontsize=8)
    right.set_ylim(bottom=0)
    for axis in (left, right):
        axis.set_xscale('log')
        axis.set_xlabel('frames observed')
        axis.grid(alpha=0.3)
    figure.tight_layout()
    save_small_png(figure, path, dpi=80)
    plt.close(figure)


def run(args):
    result = bench(args)
    print(markdown(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    plot_path = args.plot or (str(Path(args.out).with_suffix('.png')) if args.out else None)
    if plot_path:
        plot(result, plot_path)
        print(f'plot: {plot_path}')
    return 0
