"""
World-model speed: ms per predicted frame by sampler steps and expert set, ms per finetuning step.

``mowm bench model`` (or ``python bench/model_bench.py``). Frames come from an episode when
given (memories filled from its first frames), else from a synthetic scene. Latency covers all
of imagine(): the spatial render, every expert's network evaluations (batched) and the DDIM
steps. The expert-set rows time a model whose finetuner never started; the operating rows
time the node's normal state at the configured sampler steps: the finetuning thread alive and
idle (its owed steps done), and training without pause while the sampler runs (finetuning
steps per second reported beside them).
"""

import json
from pathlib import Path
import platform
import resource
import statistics
import tempfile
import time

from mowm_ros import geometry
from mowm_ros.data.episode import load_episode
from mowm_ros.model.checkpoint import save_checkpoint
from mowm_ros.model.denoiser import Denoiser
from mowm_ros.model.diffusion import DiffusionConfig
from mowm_ros.model.experts import EXPERT_NAMES
from mowm_ros.model.finetune import FinetuneConfig
from mowm_ros.world_model import Frame, WorldModel, WorldModelConfig
import numpy as np
import torch

EXPERT_SETS = {
    'short_term': ('short_term',),
    'short_term+spatial': ('short_term', 'spatial'),
    'short_term+episodic': ('short_term', 'episodic'),
    'all three': EXPERT_NAMES,
}


def synthetic_frames(count, size=64, seed=0):
    """Frames of a camera walking down a corridor of random colour stripes, with depth."""
    rng = np.random.default_rng(seed)
    K = geometry.intrinsics_from_fovy(80.0, size, size)
    frames = []
    for i in range(count):
        rgb = np.repeat(rng.integers(0, 256, (1, size, 3), dtype=np.uint8), size, axis=0)
        depth = np.full((size, size), 2.0 + (i % 5) * 0.3, np.float32)
        pose = geometry.camera_pose_from_planar(0.2 * i, 0.0, 0.05 * i, 0.3)
        frames.append(Frame(rgb=rgb, pose=pose, K=K, stamp=(i + 1) * 500_000_000,
                            depth=depth))
    return frames


def episode_frames(path, count):
    episode = load_episode(path)
    return [Frame(rgb=episode.rgb[i], pose=episode.pose[i], K=episode.K,
                  stamp=int(episode.stamp[i]),
                  depth=episode.depth[i] if episode.depth is not None else None)
            for i in range(min(count, len(episode)))]


def random_checkpoint(directory):
    save_checkpoint(directory, Denoiser(), DiffusionConfig())
    return directory


def percentile_summary(values):
    values = sorted(values)
    quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return {'median': statistics.median(values), 'p25': quartiles[0], 'p75': quartiles[-1],
            'runs': len(values)}


def bench(args):
    torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint
    temporary = None
    if checkpoint == 'random':
        temporary = tempfile.TemporaryDirectory()
        checkpoint = random_checkpoint(Path(temporary.name))
    finetune_config = FinetuneConfig()
    if args.finetune_threads is not None:
        finetune_config.torch_threads = args.finetune_threads
    if args.finetune_nice is not None:
        finetune_config.thread_nice = args.finetune_nice
    model = WorldModel(WorldModelConfig(checkpoint=str(checkpoint or ''), device=args.device,
                                        compile_mode=args.compile, finetune_on_observe=False,
                                        finetune=finetune_config, torch_threads=args.threads))
    frames = (episode_frames(args.episode, args.observe) if args.episode
              else synthetic_frames(args.observe))
    start = time.perf_counter()
    for frame in frames:
        model.observe(frame)
    observe_ms = 1000 * (time.perf_counter() - start) / len(frames)
    # (paths, horizon, 4, 4): the paths are predicted side by side, one batch per step.
    poses = np.tile(frames[-1].pose, (args.paths, args.horizon, 1, 1))
    unknown = set(args.sets or ()) - set(EXPERT_SETS)
    if unknown:
        raise ValueError(f'unknown expert sets {sorted(unknown)}; known: {list(EXPERT_SETS)}')
    rows = []
    for name in args.sets or EXPERT_SETS:
        experts = EXPERT_SETS[name]
        for steps in args.steps:
            timing = time_imagine(model, poses, experts, steps, args.repeats)
            queries = len(model.composition(experts).queries())
            rows.append({'experts': name, 'steps': steps, 'network_queries': queries,
                         'paths': args.paths, 'finetuner': 'never started', **timing})
    keyframes = model.keyframes()
    finetune = []
    if len(keyframes.rgb):
        model.finetuner.train_step(keyframes)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model.finetuner.train_step(keyframes)
            finetune.append(1000 * (time.perf_counter() - t0))
        if args.operating:
            rows += operating_rows(model, keyframes, poses, args.repeats)
    result = {
        'device': str(model.device), 'threads': torch.get_num_threads(),
        'cpu': platform.processor() or platform.machine(), 'bf16': model.config.bf16,
        'checkpoint': str(model.checkpoint_dir), 'observe_ms_per_frame': observe_ms,
        'compile': args.compile, 'paths': args.paths,
        'imagine': rows,
        'finetune_step_ms': percentile_summary(finetune) if finetune else None,
        'finetune_batch': model.finetuner.config.batch_size,
        'finetune_threads': model.finetuner.config.torch_threads,
        'finetune_thread_nice': model.finetuner.config.thread_nice,
        'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        'cuda_peak_mb': (torch.cuda.max_memory_allocated() / 2 ** 20
                         if torch.cuda.is_available() else None),
    }
    model.close()
    if temporary is not None:
        temporary.cleanup()
    return result


OPERATING_SETS = ('short_term', 'all three')


def time_imagine(model, poses, experts, steps, repeats, before_each=None):
    """
    Time ``repeats`` imagine() calls after one warm-up: a row's latency fields.

    Beside ms per predicted frame it counts the process's voluntary context switches per
    frame: threads going to sleep, e.g. an OpenMP worker that stopped spin-waiting between
    ops (model/threads.py). Unlike the latency, that count hardly depends on machine load.
    """
    model.imagine(poses[:, :1], experts=experts, steps=steps)   # same batch: compiled once
    frames = poses[..., 0, 0].size
    per_frame, switches = [], 0
    for _ in range(repeats):
        if before_each is not None:
            before_each()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
        t0 = time.perf_counter()
        model.imagine(poses, experts=experts, steps=steps)
        per_frame.append(1000 * (time.perf_counter() - t0) / frames)
        switches += resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - before
    return {**percentile_summary(per_frame), 'context_switches_per_frame':
            switches / (frames * repeats)}


def operating_rows(model, keyframes, poses, repeats):
    """Time imagine() with the finetuning thread alive and idle, then while it trains."""
    finetuner = model.finetuner
    finetuner.start()
    finetuner.submit(keyframes, new_keyframes=1)
    finetuner.wait_idle()
    rows = []
    for state in ('alive, idle', 'training'):
        for name in OPERATING_SETS:
            experts = EXPERT_SETS[name]
            steps = model.config.sampler_steps
            done, t0 = finetuner.steps_done, time.perf_counter()
            timing = time_imagine(
                model, poses, experts, steps, repeats,
                # never lets the finetuner run out of work
                (lambda: finetuner.submit(keyframes, finetuner.config.max_pending_steps))
                if state == 'training' else None)
            row = {'experts': name, 'steps': steps,
                   'network_queries': len(model.composition(experts).queries()),
                   'paths': len(poses), 'finetuner': state, **timing}
            if state == 'training':
                row['finetune_steps_per_s'] = ((finetuner.steps_done - done)
                                               / (time.perf_counter() - t0))
            rows.append(row)
    finetuner.stop()
    return rows


def markdown(result):
    lines = ['| finetuner | experts | sampler steps | network queries per step '
             '| ms per frame (median) | p25-p75 | context switches per frame '
             '| finetuning steps/s |', '|' + '---|' * 8]
    for row in result['imagine']:
        rate = row.get('finetune_steps_per_s')
        lines.append(f"| {row['finetuner']} | {row['experts']} | {row['steps']} | "
                     f"{row['network_queries']} | {row['median']:.0f} | "
                     f"{row['p25']:.0f}-{row['p75']:.0f} | "
                     f"{row['context_switches_per_frame']:.0f} | "
                     f"{'' if rate is None else f'{rate:.1f}'} |")
    if result['finetune_step_ms']:
        lines.append(f"\nfinetuning step (batch {result['finetune_batch']}): "
                     f"{result['finetune_step_ms']['median']:.0f} ms median")
    lines.append(f"peak RSS {result['peak_rss_mb']:.0f} MB; device {result['device']}, "
                 f"{result['threads']} threads; {result['paths']} path(s) per call; compile "
                 f"{result['compile'] or 'none (eager)'}")
    return '\n'.join(lines)


def run(args):
    result = bench(args)
    print(markdown(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0
