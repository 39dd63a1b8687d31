"""
Benchmarks of the memories on exact synthetic scenes (``mowm bench memory``).

- integrate: fuse 640x480 RGB-D frames (noisy depth, dropouts) into the spatial memory;
- render: 64x64 views of a 1,000,000-point memory built by touring a large maze, plus the worst
  case of a million points all inside the view frustum (nothing to cull);
- hour: a simulated hour at 30 Hz (108,000 frames) through a maze with both memories capped,
  reporting point and keyframe counts against the caps and the process RSS over time.
"""

import json
import os
import platform
import resource
import statistics
import time

from mowm_ros import geometry
from mowm_ros.memory import scenes
from mowm_ros.memory.episodic import EpisodicBuffer, EpisodicBufferConfig
from mowm_ros.memory.spatial import SpatialMemory, SpatialMemoryConfig
from mowm_ros.render import render_points
import numpy as np

SECOND = 1_000_000_000
RGBD_FOCAL = 525.0   # a Kinect-like 640x480 camera


def rss_mb():
    """Resident set size of this process in MiB (peak RSS where /proc is missing)."""
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def summary_ms(seconds):
    values = np.asarray(seconds) * 1e3
    return {'median_ms': float(np.median(values)), 'p90_ms': float(np.percentile(values, 90)),
            'mean_ms': float(values.mean()), 'max_ms': float(values.max()),
            'count': int(len(values))}


def median_of_runs(runs):
    """Each key's median over repeated runs, and the spread of the medians."""
    result = {key: float(statistics.median(run[key] for run in runs)) for key in runs[0]}
    medians = [run['median_ms'] for run in runs]
    result['run_medians_ms'] = [round(value, 3) for value in medians]
    return result


def rgbd_intrinsics(width, height):
    focal = RGBD_FOCAL * width / 640.0
    return np.array([[focal, 0.0, (width - 1) / 2.0], [0.0, focal, (height - 1) / 2.0],
                     [0.0, 0.0, 1.0]])


def bench_integrate(frames=60, width=640, height=480, repeat=3, log=print):
    """Median time to integrate one RGB-D frame, over ``repeat`` fresh memories."""
    maze = scenes.maze_scene((6, 6), cell_size=3.0, seed=0)
    K = rgbd_intrinsics(width, height)
    poses = list(scenes.tour_poses(maze, speed=1.0, rate_hz=3.0))[:frames]
    rng = np.random.default_rng(0)
    log(f'integrate: ray-casting {len(poses)} frames of {width}x{height}')
    rendered = [maze.scene.render(pose, K, width, height, depth_noise=0.002, dropout=0.02,
                                  rng=rng) for pose in poses]
    runs = []
    for run in range(repeat):
        memory = SpatialMemory()
        times = []
        for index, frame in enumerate(rendered):
            start = time.perf_counter()
            memory.integrate(frame.rgb, frame.depth, frame.pose, K, (index + 1) * SECOND)
            times.append(time.perf_counter() - start)
        runs.append(summary_ms(times))
        log(f'integrate run {run + 1}/{repeat}: median {runs[-1]["median_ms"]:.2f} ms')
    result = median_of_runs(runs)
    result.update(frame=f'{width}x{height}', frames=len(rendered),
                  pixel_stride=memory.pixel_stride(K), points_after=len(memory),
                  voxel_size=memory.config.voxel_size)
    return result


def build_large_memory(points, log=print):
    """Tour a 60 m maze until the memory holds ``points`` or more; return it and the poses."""
    maze = scenes.maze_scene((20, 20), cell_size=3.0, seed=1)
    K = geometry.intrinsics_from_fovy(80.0, 160, 120)
    # The cap sits above the target so the memory reaches it without evicting.
    memory = SpatialMemory(SpatialMemoryConfig(max_points=int(points * 1.05)))
    poses = []
    start = time.perf_counter()
    for index, pose in enumerate(scenes.tour_poses(maze, speed=1.0, rate_hz=5.0, laps=3)):
        frame = maze.scene.render(pose, K, 160, 120)
        memory.integrate(frame.rgb, frame.depth, pose, K, (index + 1) * SECOND)
        poses.append(pose)
        if len(memory) >= points or memory.stats()['evicted']:
            break
    log(f'render: built a {len(memory):,}-point memory from {len(poses)} frames in '
        f'{time.perf_counter() - start:.0f} s')
    return memory, poses


def bench_render(points=1_000_000, views=60, size=64, repeat=3, log=print):
    """Median time to render a view of a large memory, and of the no-culling worst case."""
    memory, poses = build_large_memory(points, log)
    K = geometry.intrinsics_from_fovy(80.0, size, size)
    # Views from where the robot has recently been, turned to look around.
    rng = np.random.default_rng(3)
    recent = poses[-300:]
    view_poses = []
    for _ in range(views):
        x, y, yaw = geometry.planar_pose(recent[rng.integers(len(recent))])
        view_poses.append(geometry.camera_pose_from_planar(x, y, yaw + rng.uniform(-1, 1), 0.5))
    runs, coverage = [], []
    for run in range(repeat):
        times = []
        for pose in view_poses:
            start = time.perf_counter()
            view = memory.render(pose, K, size, size)
            times.append(time.perf_counter() - start)
            coverage.append(view.coverage)
        runs.append(summary_ms(times))
        log(f'render run {run + 1}/{repeat}: median {runs[-1]["median_ms"]:.2f} ms')
    result = median_of_runs(runs)
    in_view = [memory.count_in_view(pose, K, size, size) for pose in view_poses]
    result.update(view=f'{size}x{size}', memory_points=len(memory), views=views,
                  mean_points_in_view=float(np.mean(in_view)),
                  max_points_in_view=int(np.max(in_view)), mean_coverage=float(np.mean(coverage)))

    # Worst case: every point inside the frustum, between 1 and 20 m; nothing can be culled.
    pose = geometry.camera_pose_from_planar(0.0, 0.0, 0.0, 0.5)
    depth = rng.uniform(1.0, 20.0, points)
    u, v = rng.uniform(-0.5, size - 0.5, (2, points))
    camera = np.stack([(u - K[0, 2]) / K[0, 0] * depth, (v - K[1, 2]) / K[1, 1] * depth, depth])
    xyz = (pose[:3, :3] @ camera).T.astype(np.float32) + pose[:3, 3].astype(np.float32)
    rgb = rng.integers(0, 256, (points, 3), dtype=np.uint8)
    times = []
    for _ in range(max(5, repeat * 5)):
        start = time.perf_counter()
        render_points(xyz, rgb, pose, K, size, size, point_size=memory.config.point_size,
                      max_radius=memory.config.render_max_radius)
        times.append(time.perf_counter() - start)
    result['worst_case_all_in_view'] = dict(summary_ms(times), points=points)
    log(f'render worst case: median {result["worst_case_all_in_view"]["median_ms"]:.2f} ms')
    return result


def bench_hour(frames=108_000, width=160, height=120, rate_hz=30.0, max_points=1_000_000,
               capacity=1000, log=print):
    """Run ``frames`` frames at ``rate_hz`` through a 72 m maze; report caps and RSS."""
    maze = scenes.maze_scene((24, 24), cell_size=3.0, seed=2)
    K = geometry.intrinsics_from_fovy(80.0, width, height)
    spatial = SpatialMemory(SpatialMemoryConfig(max_points=max_points))
    episodic = EpisodicBuffer(EpisodicBufferConfig(capacity=capacity))
    size = episodic.config.image_size
    side = min(width, height)
    rows = (height - side) // 2 + np.arange(size) * side // size
    cols = (width - side) // 2 + np.arange(size) * side // size
    step = 1.0 / rate_hz
    samples = []
    max_seen = {'points': 0, 'keyframes': 0}
    timing = {'raycast': [], 'integrate': [], 'episodic': []}
    rss_start = rss_mb()
    log(f'hour: {frames:,} frames of {width}x{height} at {rate_hz:g} Hz, RSS {rss_start:.0f} MiB')
    poses = scenes.tour_poses(maze, speed=1.0, rate_hz=rate_hz, laps=1000)
    wall_start = time.perf_counter()
    cap_reached_at = None
    for index in range(frames):
        pose = next(poses)
        stamp = int(round((index + 1) * step * SECOND))
        tick = time.perf_counter()
        frame = maze.scene.render(pose, K, width, height)
        tock = time.perf_counter()
        spatial.integrate(frame.rgb, frame.depth, pose, K, stamp)
        tack = time.perf_counter()
        episodic.add(np.ascontiguousarray(frame.rgb[rows][:, cols]), pose, stamp)
        done = time.perf_counter()
        if index % 10 == 0:   # sampled, to keep the bookkeeping small
            timing['raycast'].append(tock - tick)
            timing['integrate'].append(tack - tock)
            timing['episodic'].append(done - tack)
        max_seen['points'] = max(max_seen['points'], len(spatial))
        max_seen['keyframes'] = max(max_seen['keyframes'], len(episodic))
        if cap_reached_at is None and spatial.stats()['evicted'] > 0 \
                and len(episodic) == capacity:
            cap_reached_at = {'frame': index + 1, 'rss_mb': rss_mb()}
        if (index + 1) % max(1, frames // 20) == 0 or index + 1 == frames:
            samples.append({'frame': index + 1, 'simulated_s': round((index + 1) * step, 1),
                            'rss_mb': round(rss_mb(), 1), 'points': len(spatial),
                            'keyframes': len(episodic)})
            log(f'hour: {samples[-1]} after {time.perf_counter() - wall_start:.0f} s')
    rss_end = rss_mb()
    return {'frames': frames, 'simulated_s': frames * step, 'frame': f'{width}x{height}',
            'wall_s': time.perf_counter() - wall_start, 'max_points': max_points,
            'max_points_seen': max_seen['points'], 'capacity': capacity,
            'max_keyframes_seen': max_seen['keyframes'], 'points_end': len(spatial),
            'keyframes_end': len(episodic), 'evicted_points': spatial.stats()['evicted'],
            'keyframes_admitted': episodic.version, 'rss_start_mb': rss_start,
            'rss_end_mb': rss_end, 'caps_reached': cap_reached_at,
            'median_ms': {name: float(np.median(values) * 1e3)
                          for name, values in timing.items() if values},
            'rss_samples': samples}


def markdown(results):
    """Format the headline numbers as a Markdown table."""
    lines = ['| benchmark | result |', '|---|---|']
    if 'integrate' in results:
        r = results['integrate']
        lines.append(f'| integrate {r["frame"]} RGB-D (stride {r["pixel_stride"]}, '
                     f'{r["voxel_size"]:g} m voxels) | median {r["median_ms"]:.2f} ms, p90 '
                     f'{r["p90_ms"]:.2f} ms (run medians {r["run_medians_ms"]}) |')
    if 'render' in results:
        r = results['render']
        worst = r['worst_case_all_in_view']
        lines.append(f'| render {r["view"]} from a {r["memory_points"]:,}-point memory '
                     f'(mean {r["mean_points_in_view"]:,.0f}, max {r["max_points_in_view"]:,} '
                     f'points in view) | median {r["median_ms"]:.2f} ms, p90 {r["p90_ms"]:.2f} '
                     f'ms, max {r["max_ms"]:.2f} ms (run medians {r["run_medians_ms"]}) |')
        lines.append(f'| render {r["view"]}, worst case: {worst["points"]:,} points all in '
                     f'the frustum | median {worst["median_ms"]:.2f} ms, p90 '
                     f'{worst["p90_ms"]:.2f} ms |')
    if 'hour' in results:
        r = results['hour']
        lines.append(f'| simulated hour: {r["frames"]:,} frames of {r["frame"]} at 30 Hz '
                     f'({r["simulated_s"] / 60:.1f} simulated min) | points max '
                     f'{r["max_points_seen"]:,} / cap {r["max_points"]:,}; keyframes max '
                     f'{r["max_keyframes_seen"]} / cap {r["capacity"]}; RSS start '
                     f'{r["rss_start_mb"]:.0f} MiB, at caps '
                     f'{(r["caps_reached"] or {}).get("rss_mb", float("nan")):.0f} MiB, end '
                     f'{r["rss_end_mb"]:.0f} MiB |')
    return '\n'.join(lines)


def run(args, log=print):
    """Run the benchmarks ``args`` selects, print a Markdown table, write JSON to --out."""
    parts = args.only or ['integrate', 'render', 'hour']
    results = {'machine': {'cpus': _cpu_count(), 'processor': platform.processor(),
                           'python': platform.python_version()}}
    width, height = (int(value) for value in args.hour_size.lower().split('x'))
    if 'integrate' in parts:
        results['integrate'] = bench_integrate(args.integrate_frames, repeat=args.repeat,
                                               log=log)
    if 'render' in parts:
        results['render'] = bench_render(args.render_points, args.render_views,
                                         repeat=args.repeat, log=log)
    if 'hour' in parts:
        results['hour'] = bench_hour(args.hour_frames, width, height,
                                     max_points=args.hour_max_points,
                                     capacity=args.hour_capacity, log=log)
    table = markdown(results)
    print(table)
    if args.out:
        with open(args.out, 'w') as stream:
            json.dump(dict(results, table=table, arguments=_arguments(args)), stream, indent=2)
    return 0


def _arguments(args):
    return {key: value for key, value in vars(args).items() if not callable(value)}


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()
