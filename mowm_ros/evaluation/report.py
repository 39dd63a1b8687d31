"""
The memory benchmark's report: aggregate per-episode results into a table, JSON and plots.

Means are over frames (every predicted frame of every episode counts once); the per-episode
spread of the revisit gains is given as a standard error. The issue's targets are checked
and stated with their margins.
"""

import io
import json
import math
from pathlib import Path

from mowm_ros.evaluation.metrics import masked_mean
from mowm_ros.evaluation.runner import load_strips
import numpy as np
from PIL import Image

NO_MEMORY = 'no memory'
FULL = 'all three, contrastive'
NAIVE = 'all three, naive sum'
# Rows that add one expert to a row without it: (with, without).
EXPERT_ADDITIONS = (('+ episodic', 'no memory'), ('+ spatial', 'no memory'),
                    ('all three, contrastive', '+ episodic'),
                    ('all three, contrastive', '+ spatial'))
TARGET_REVISIT_GAIN_DB = 5.0
# Issue 14's targets per condition on revisit PSNR: (row, over row, at least dB).
CONDITION_TARGETS = {
    'rgbd': (('+ episodic', NO_MEMORY, 1.5), (FULL, '+ spatial', 0.5)),
    'rgb-only': (('+ episodic', NO_MEMORY, 2.0),),
    'drift': ((FULL, '+ spatial', 1.0),),
}


def _sem(values):
    values = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if len(values) < 2:
        return math.nan
    return float(values.std(ddof=1) / math.sqrt(len(values)))


def _finite(value):
    return None if value is None or math.isnan(value) else round(float(value), 4)


def aggregate(results):
    """Return the summary dict of a list of per-episode results (one settings signature)."""
    if not results:
        raise ValueError('no results to aggregate')
    names = results[0]['row_order']
    revisit = np.concatenate([np.asarray(r['revisit'], dtype=bool) for r in results])
    horizon = len(results[0]['revisit'])
    rows = {}
    for name in names:
        psnr = np.concatenate([r['rows'][name]['psnr'] for r in results])
        ssim = np.concatenate([r['rows'][name]['ssim'] for r in results])
        per_episode = np.array([r['rows'][name]['psnr'] for r in results])
        episode_revisit = np.array([r['revisit'] for r in results], dtype=bool)
        rows[name] = {
            'psnr_all': masked_mean(psnr), 'psnr_revisit': masked_mean(psnr, revisit),
            'psnr_novel': masked_mean(psnr, ~revisit),
            'ssim_all': masked_mean(ssim), 'ssim_revisit': masked_mean(ssim, revisit),
            'ssim_novel': masked_mean(ssim, ~revisit),
            'ms_per_frame': float(np.median([r['rows'][name]['ms_per_frame']
                                             for r in results])),
            'queries_per_step': results[0]['rows'][name]['queries_per_step'],
            'psnr_by_horizon': per_episode.mean(axis=0).tolist(),
            'psnr_revisit_by_horizon': [
                masked_mean(per_episode[:, k], episode_revisit[:, k]) for k in range(horizon)],
        }
    gains = {}
    for name in names:
        per_episode_gain = [
            masked_mean(np.subtract(r['rows'][name]['psnr'], r['rows'][NO_MEMORY]['psnr']),
                        r['revisit']) for r in results] if NO_MEMORY in names else []
        gains[name] = {'mean': masked_mean(per_episode_gain) if per_episode_gain else math.nan,
                       'sem': _sem(per_episode_gain)}
    observed = [r['observed'] for r in results]
    summary = {
        'episodes': len(results), 'seeds': [r['seed'] for r in results],
        'frames': int(len(revisit)), 'revisit_frames': int(revisit.sum()),
        'revisit_fraction': float(revisit.mean()), 'horizon': horizon,
        'settings': results[0]['signature'], 'rows': rows,
        'revisit_gain_over_no_memory_db': gains,
        'observe': {key: float(np.mean([o[key] for o in observed]))
                    for key in ('seconds', 'frames', 'keyframes', 'points', 'finetune_steps')},
        'finetuning_per_100_frames': finetuning_cost(observed),
        'wall_seconds_per_episode': float(np.mean([r['wall_seconds'] for r in results])),
    }
    condition = results[0]['signature'].get('condition', 'rgbd')
    summary['targets'] = check_targets(rows, condition)
    return summary


def finetuning_cost(observed):
    """
    Finetuning steps and CPU-seconds per 100 observed frames, over the episodes that count both.

    Results written before the CPU time was recorded lack it and are left out (None when none
    has it).
    """
    counted = [o for o in observed if 'finetune_cpu_seconds' in o and o['frames']]
    if not counted:
        return None
    frames = sum(o['frames'] for o in counted)
    return {'episodes': len(counted),
            'steps': 100.0 * sum(o['finetune_steps'] for o in counted) / frames,
            'cpu_seconds': 100.0 * sum(o['finetune_cpu_seconds'] for o in counted) / frames}


def check_targets(rows, condition='rgbd'):
    """Check the issues' targets; return each with its measured margin (positive: met)."""
    targets = []

    def add(text, margin):
        targets.append({'target': text, 'margin_db': _finite(margin),
                        'met': bool(margin is not None and not math.isnan(margin)
                                    and margin > 0)})

    if FULL in rows and NO_MEMORY in rows:
        gain = rows[FULL]['psnr_revisit'] - rows[NO_MEMORY]['psnr_revisit']
        add(f'{FULL} beats {NO_MEMORY} on revisits by >= {TARGET_REVISIT_GAIN_DB:g} dB PSNR '
            f'(measured {gain:+.2f} dB)', gain - TARGET_REVISIT_GAIN_DB)
    for with_expert, without in EXPERT_ADDITIONS:
        if with_expert in rows and without in rows:
            for split in ('all', 'revisit'):
                margin = (rows[with_expert][f'psnr_{split}'] - rows[without][f'psnr_{split}'])
                add(f'{with_expert} beats {without} on {split} frames', margin)
    if FULL in rows and NAIVE in rows:
        for split in ('all', 'revisit'):
            add(f'contrastive beats naive sum on {split} frames',
                rows[FULL][f'psnr_{split}'] - rows[NAIVE][f'psnr_{split}'])
    for row, over, at_least in CONDITION_TARGETS[condition]:
        if row in rows and over in rows:
            gain = rows[row]['psnr_revisit'] - rows[over]['psnr_revisit']
            add(f'{condition}: {row} beats {over} on revisits by >= {at_least:g} dB '
                f'(measured {gain:+.2f} dB)', gain - at_least)
    return targets


def _fmt(value, digits):
    return '-' if value is None or math.isnan(value) else f'{value:.{digits}f}'


def markdown_table(summary):
    """Format the benchmark table and the targets as Markdown."""
    lines = ['| row | PSNR all | PSNR revisit | PSNR novel | SSIM all | SSIM revisit | '
             'SSIM novel | revisit gain vs no memory (dB, ± s.e.) | queries / step | '
             'ms / frame |', '|---|---|---|---|---|---|---|---|---|---|']
    for name, row in summary['rows'].items():
        gain = summary['revisit_gain_over_no_memory_db'][name]
        gain_text = (f"{_fmt(gain['mean'], 2)} ± {_fmt(gain['sem'], 2)}"
                     if name != NO_MEMORY else '')
        lines.append(
            f"| {name} | {_fmt(row['psnr_all'], 2)} | {_fmt(row['psnr_revisit'], 2)} | "
            f"{_fmt(row['psnr_novel'], 2)} | {_fmt(row['ssim_all'], 3)} | "
            f"{_fmt(row['ssim_revisit'], 3)} | {_fmt(row['ssim_novel'], 3)} | {gain_text} | "
            f"{row['queries_per_step']} | {row['ms_per_frame']:.0f} |")
    lines.append('')
    lines.append(f"{summary['episodes']} episodes, {summary['frames']} predicted frames "
                 f"({summary['revisit_frames']} revisits, "
                 f"{100 * summary['revisit_fraction']:.0f}%).")
    cost = summary.get('finetuning_per_100_frames')
    if cost and cost['steps']:
        lines.append(f"Episodic finetuning per 100 observed frames: {cost['steps']:.0f} steps, "
                     f"{cost['cpu_seconds']:.1f} CPU-seconds of the finetuning thread "
                     f"({cost['episodes']} episodes).")
    lines.append('')
    for target in summary['targets']:
        mark = 'met' if target['met'] else 'missed'
        margin = target['margin_db']
        lines.append(f"- {mark}: {target['target']}"
                     + (f' (margin {margin:+.2f} dB)' if margin is not None else ''))
    return '\n'.join(lines)


def plot_horizon(summary, path):
    """PSNR against the prediction horizon, one line per row (all frames; revisits)."""
    # lazy: matplotlib is slow to import; its Agg backend is chosen only to plot
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # lazy: after choosing the backend

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for name, row in summary['rows'].items():
        steps = np.arange(1, len(row['psnr_by_horizon']) + 1)
        axes[0].plot(steps, row['psnr_by_horizon'], label=name)
        axes[1].plot(steps, row['psnr_revisit_by_horizon'], label=name)
    for axis, title in zip(axes, ('all frames', 'revisit frames')):
        axis.set_title(title)
        axis.set_xlabel('predicted frame (0.5 s apart)')
        axis.grid(alpha=0.3)
    axes[0].set_ylabel('PSNR (dB)')
    axes[1].legend(fontsize=7)
    figure.suptitle(f"PSNR against horizon, {summary['episodes']} held-out episodes")
    figure.tight_layout()
    save_small_png(figure, path, dpi=80)
    plt.close(figure)


def strip_grid(images_by_row, gap=2):
    """Tile frames (rows of (N, S, S, 3) uint8) into one image with white gaps."""
    rows = len(images_by_row)
    columns = max(len(frames) for frames in images_by_row)
    size = images_by_row[0].shape[1]
    step = size + gap
    grid = np.full((rows * step - gap, columns * step - gap, 3), 255, np.uint8)
    for r, frames in enumerate(images_by_row):
        for c, frame in enumerate(frames):
            grid[r * step:r * step + size, c * step:c * step + size] = frame
    return grid


def plot_strips(strips_by_seed, row_names, path, max_episodes=1):
    """Truth against every row's predictions at revisit frames of the first episode(s)."""
    # lazy: matplotlib is slow to import; its Agg backend is chosen only to plot
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # lazy: after choosing the backend

    chosen = [(seed, s) for seed, s in strips_by_seed if len(s['positions'])][:max_episodes]
    if not chosen:
        return False
    labels = ['truth'] + list(row_names)
    grids = [strip_grid([s['truth']] + list(s['predictions'])) for _, s in chosen]
    width = max(grid.shape[1] for grid in grids)
    height = sum(grid.shape[0] for grid in grids)
    # Frames drawn at about their own pixel size (dpi 100), labels beside them.
    figure, axes = plt.subplots(len(chosen), 1, squeeze=False,
                                figsize=(width / 100 + 1.5, height / 100 + 0.4 * len(chosen)))
    for axis, (seed, strips), grid in zip(axes[:, 0], chosen, grids):
        size = strips['truth'].shape[1]
        axis.imshow(grid, interpolation='nearest')
        axis.set_yticks([(size + 2) * r + size / 2 for r in range(len(labels))], labels,
                        fontsize=7)
        axis.set_xticks([(size + 2) * c + size / 2 for c in range(len(strips['positions']))],
                        [f't+{int(p) + 1}' for p in strips['positions']], fontsize=7)
        axis.tick_params(length=0)
        for spine in axis.spines.values():
            spine.set_visible(False)
        axis.set_title(f'seed {seed}: revisit frames, predicted frame index', fontsize=8)
    figure.tight_layout(pad=0.3)
    save_small_png(figure, path, dpi=100)
    plt.close(figure)
    return True


def save_small_png(figure, path, dpi):
    """Save ``figure`` as a 256-colour PNG (a fraction of the size, fine for frames at 64 px)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=dpi, bbox_inches='tight')
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert('RGB').quantize(256).save(path, optimize=True)


def write_report(config, results):
    """Write results.json, results.md and the plots into the condition's report_dir."""
    out = Path(config.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = aggregate(results)
    summary['condition'] = config.condition
    (out / 'results.json').write_text(json.dumps(summary, indent=1))
    (out / 'results.md').write_text(f'# Memory benchmark ({config.condition})\n\n'
                                    + markdown_table(summary) + '\n')
    plot_horizon(summary, out / 'psnr_horizon.png')
    strips = [(r['seed'], load_strips(config, r['seed'])) for r in results]
    plot_strips(strips, results[0]['row_order'], out / 'strips.png')
    return summary
