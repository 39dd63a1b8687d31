"""
Soak: ``python bench/soak.py --minutes 30 --out out/soak`` (not part of ``make test``).

Plays a rendered maze episode (looped) at 30 Hz into the world_model node for N minutes, both
as processes of their own on a private DDS domain with the Fast DDS large-data profile, and
samples every ``--sample-s`` seconds: the node's RSS, its diagnostics (frames, memory points
and keyframes against their caps, dropped requests, per-frame prediction latency) and the age
of each prediction it publishes (from the newest frame it started from to its arrival), as
p50/p95 per sample window. Writes ``soak.json`` and ``soak.png`` and prints a summary; exits
non-zero when a cap was exceeded or the node died.
"""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import threading
import time

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE',
                      str(REPO / 'config' / 'fastdds_large_data.xml'))
sys.path.insert(0, str(REPO / 'test'))          # the listener shared with test_overload.py

from mowm_ros.data.episode import Episode, save_episode  # noqa: E402
from mowm_ros.memory.scenes import maze_scene, tour_poses  # noqa: E402
from node_listener import NodeListener  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
import rclpy  # noqa: E402
from rclpy.node import Node  # noqa: E402


def render_episode(path, frames, size, rate_hz, seed=0):
    """Render a camera touring a box maze (no simulator) and save it as an episode."""
    import itertools
    from mowm_ros import geometry
    width, height = size
    maze = maze_scene(cells=(6, 6), seed=seed)
    poses = list(itertools.islice(tour_poses(maze, rate_hz=rate_hz, laps=8), frames))
    K = geometry.intrinsics_from_fovy(80.0, width, height)
    rendered = [maze.scene.render(pose, K, width, height) for pose in poses]
    episode = Episode(rgb=np.stack([f.rgb for f in rendered]), pose=np.stack(poses), K=K,
                      stamp=(np.arange(len(poses), dtype=np.int64) + 1) * int(1e9 / rate_hz),
                      depth=np.stack([f.depth for f in rendered]),
                      action=np.zeros(len(poses), np.int64), meta={'source': 'soak'})
    save_episode(path, episode)


def claim_domain():
    """Return (domain id, open lock file) of a DDS domain no test run is using."""
    import fcntl
    directory = Path(tempfile.gettempdir()) / 'mowm_ros_test_domains'
    directory.mkdir(exist_ok=True)
    for domain in range(101, 0, -1):
        handle = open(directory / f'{domain}.lock', 'w')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return domain, handle
        except BlockingIOError:
            handle.close()
    raise RuntimeError('no free DDS domain')


def number(values, key):
    try:
        return float(values[key])
    except (KeyError, ValueError):
        return None


def plot(samples, caps, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    minutes = [s['t_s'] / 60 for s in samples]
    figure, axes = plt.subplots(4, 1, figsize=(9, 11), sharex=True)
    axes[0].plot(minutes, [s['rss_mib'] for s in samples], label='node RSS')
    axes[0].set_ylabel('MiB')
    axes[1].plot(minutes, [s['age_p50_s'] for s in samples], label='prediction age p50')
    axes[1].plot(minutes, [s['age_p95_s'] for s in samples], label='prediction age p95')
    axes[1].plot(minutes, [(s['latency_ms_per_frame'] or np.nan) / 1000 for s in samples],
                 label='model latency per frame (median)')
    axes[1].set_ylabel('s')
    axes[2].plot(minutes, [s['points'] for s in samples], label='memory points')
    axes[2].axhline(caps['max_points'], color='r', linestyle='--', label='max_points')
    axes[3].plot(minutes, [s['keyframes'] for s in samples], label='keyframes')
    axes[3].axhline(caps['keyframe_capacity'], color='r', linestyle='--',
                    label='keyframe_capacity')
    axes[3].set_xlabel('minutes')
    for axis in axes:
        axis.legend(loc='upper left')
        axis.grid(alpha=0.3)
    figure.suptitle('world_model soak')
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--minutes', type=float, default=30.0)
    parser.add_argument('--rate', type=float, default=30.0, help='camera rate, Hz')
    parser.add_argument('--size', default='320x240', help='camera image size')
    parser.add_argument('--frames', type=int, default=600, help='episode frames, looped')
    parser.add_argument('--sample-s', type=float, default=10.0)
    parser.add_argument('--max-points', type=int, default=150_000)
    parser.add_argument('--keyframes', type=int, default=150)
    parser.add_argument('--torch-threads', type=int, default=1)
    parser.add_argument('--domain', type=int, default=0,
                        help='DDS domain; 0 = a free one (locked as the tests do)')
    parser.add_argument('--out', default='out/soak')
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix='mowm_soak_'))
    width, height = (int(v) for v in args.size.split('x'))
    episode_path = work / 'episode.npz'
    print(f'rendering {args.frames} frames {args.size} ...', flush=True)
    render_episode(episode_path, args.frames, (width, height), args.rate)

    lock = None
    if not args.domain:
        args.domain, lock = claim_domain()
    env = dict(os.environ, ROS_DOMAIN_ID=str(args.domain))
    caps = {'max_points': args.max_points, 'keyframe_capacity': args.keyframes}
    node_parameters = [f'max_points:={args.max_points}', f'keyframe_capacity:={args.keyframes}',
                       f'snapshot_dir:={work / "memory"}', 'snapshot_period_s:=60.0',
                       f'torch_threads:={args.torch_threads}', 'extrinsics_from_tf:=false']
    node_command = [sys.executable, '-m', 'mowm_ros.nodes.world_model_node', '--ros-args']
    for parameter in node_parameters:
        node_command += ['-p', parameter]
    player_command = [sys.executable, '-m', 'mowm_ros.nodes.episode_player', '--ros-args',
                      '-p', f'episode:={episode_path}', '-p', f'rate_hz:={args.rate}',
                      '-p', 'loop:=true']
    node_log = open(out / 'node.log', 'wb')
    node_process = subprocess.Popen(node_command, env=env, stdout=node_log,
                                    stderr=subprocess.STDOUT)
    player_process = subprocess.Popen(player_command, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.STDOUT)
    os.environ['ROS_DOMAIN_ID'] = str(args.domain)
    rclpy.init()
    listener_node = Node('soak_listener')
    listener = NodeListener(listener_node, frame_interval_s=0.5)
    spinner = threading.Thread(target=rclpy.spin, args=(listener_node,), daemon=True)
    spinner.start()
    node_ps = psutil.Process(node_process.pid)
    samples = []
    start = time.monotonic()
    failure = None
    try:
        while time.monotonic() - start < args.minutes * 60:
            time.sleep(args.sample_s)
            if node_process.poll() is not None:
                failure = f'node exited with {node_process.returncode}'
                break
            values, ages = listener.take()
            sample = {
                't_s': round(time.monotonic() - start, 1),
                'rss_mib': node_ps.memory_info().rss / 2**20,
                'cpu_s': sum(node_ps.cpu_times()[:2]),
                'frames_received': number(values, 'frames received'),
                'frames_observed': number(values, 'frames observed'),
                'points': number(values, 'memory points'),
                'keyframes': number(values, 'keyframes'),
                'predictions': number(values, 'predictions published'),
                'dropped_predictions': number(values, 'dropped prediction requests'),
                'dropped_observations': number(values, 'dropped observations'),
                'latency_ms_per_frame': number(values, 'prediction latency (ms per frame)'),
                'ages': len(ages),
                'age_p50_s': float(np.percentile(ages, 50)) if ages else None,
                'age_p95_s': float(np.percentile(ages, 95)) if ages else None,
                'image_rate_hz': number(values, 'image rate (Hz)'),
            }
            samples.append(sample)
            print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v)
                              for k, v in sample.items()}), flush=True)
    finally:
        for process in (player_process, node_process):
            if process.poll() is None:
                process.send_signal(subprocess.signal.SIGINT)
        for process in (player_process, node_process):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        node_log.close()
        listener_node.destroy_node()
        rclpy.try_shutdown()

    summary = summarise(samples, caps, failure)
    result = {'args': vars(args), 'caps': caps, 'summary': summary, 'samples': samples}
    (out / 'soak.json').write_text(json.dumps(result, indent=2))
    if samples:
        plot([s for s in samples if s['points'] is not None] or samples, caps, out / 'soak.png')
    print(json.dumps(summary, indent=2))
    return 0 if summary['ok'] else 1


def summarise(samples, caps, failure):
    def values(key, part=slice(None)):
        return [s[key] for s in samples[part] if s[key] is not None]

    third = max(len(samples) // 3, 1)
    summary = {'samples': len(samples), 'failure': failure}
    if samples:
        rss = values('rss_mib')
        summary.update({
            'minutes': samples[-1]['t_s'] / 60,
            'rss_mib_start': rss[0], 'rss_mib_end': rss[-1], 'rss_mib_max': max(rss),
            'rss_mib_first_third_mean': float(np.mean(values('rss_mib', slice(0, third)))),
            'rss_mib_last_third_mean': float(np.mean(values('rss_mib', slice(-third, None)))),
            'points_max': max(values('points'), default=None),
            'keyframes_max': max(values('keyframes'), default=None),
            'frames_received': samples[-1]['frames_received'],
            'frames_observed': samples[-1]['frames_observed'],
            'predictions': samples[-1]['predictions'],
            'dropped_predictions': samples[-1]['dropped_predictions'],
            'dropped_observations': samples[-1]['dropped_observations'],
        })
        for name, part in (('first_third', slice(0, third)), ('last_third', slice(-third, None)),
                           ('all', slice(None))):
            p50, p95 = values('age_p50_s', part), values('age_p95_s', part)
            latency = values('latency_ms_per_frame', part)
            summary[f'age_p50_s_{name}'] = float(np.median(p50)) if p50 else None
            summary[f'age_p95_s_{name}'] = float(np.max(p95)) if p95 else None
            summary[f'latency_ms_per_frame_{name}'] = float(np.median(latency)) \
                if latency else None
    caps_held = bool(samples) and (summary.get('points_max') or 0) <= caps['max_points'] and \
        (summary.get('keyframes_max') or 0) <= caps['keyframe_capacity']
    summary['caps_held'] = caps_held
    summary['ok'] = caps_held and failure is None
    return summary


if __name__ == '__main__':
    sys.exit(main())
