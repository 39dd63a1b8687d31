"""
The navigation evaluation's report: per-row metrics over (maze, goal) episodes, table and plot.

Success rate and SPL (success weighted by shortest path over the path driven) are over
episodes, with the binomial standard error; distances and path lengths are episode means;
planning time is the mean over every decision of every episode (the first decision of an
episode includes localising the goal, given apart). The comparison of memory against no
memory is stated with its margin, whichever way it goes.
"""

import json
import math
from pathlib import Path

from mowm_ros.evaluation.navigation import ROW_NAMES
from mowm_ros.evaluation.report import save_small_png
import numpy as np

MEMORY = ROW_NAMES['all']
NO_MEMORY = ROW_NAMES['no_memory']


def _mean(values):
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def _median(values):
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.median(values)) if values else math.nan


def _sem(values):
    values = [v for v in values if v is not None and not math.isnan(v)]
    if len(values) < 2:
        return math.nan
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


def aggregate(results):
    """Return the summary dict of a list of per-(maze, goal) results."""
    if not results:
        raise ValueError('no results to aggregate')
    names = results[0]['row_order']
    rows = {}
    for name in names:
        drives = [r['rows'][name] for r in results]
        success = [float(d['success']) for d in drives]
        rate = float(np.mean(success))
        decisions = [(d['decisions'], d['planning_ms']) for d in drives if d['planning_ms']]
        total = sum(n for n, _ in decisions)
        rows[name] = {
            'episodes': len(drives), 'successes': int(sum(success)),
            'success_rate': rate, 'success_rate_sem': math.sqrt(rate * (1 - rate) / len(drives)),
            'spl': _mean([d['spl'] for d in drives]),
            'came_within_radius_rate': _mean([float(d['came_within_radius']) for d in drives]),
            'final_distance': _mean([d['final_distance'] for d in drives]),
            'final_distance_sem': _sem([d['final_distance'] for d in drives]),
            'final_distance_median': _median([d['final_distance'] for d in drives]),
            'path_length': _mean([d['path_length'] for d in drives]),
            'steps': _mean([d['steps'] for d in drives]),
            'planning_ms': (sum(n * ms for n, ms in decisions) / total) if total else math.nan,
            'planning_ms_after_first': _mean([d['planning_ms_after_first'] for d in drives]),
            'localisation_ms': _mean([d['localisation_ms'] for d in drives]),
            'localisation_error_median': _median([d['localisation_error'] for d in drives]),
            'localised_within_radius': _mean([
                float(d['localisation_error'] <= results[0]['signature']['goal_radius'])
                for d in drives if d['localisation_error'] is not None]),
            'arrived_rate': _mean([float(d['reason'] == 'arrived') for d in drives]),
        }
    settings = results[0]['signature']
    summary = {
        'episodes': len(results), 'mazes': len({r['seed'] for r in results}),
        'seeds': sorted({r['seed'] for r in results}), 'settings': settings, 'rows': rows,
        'shortest_path_mean': _mean([r['shortest_path'] for r in results]),
        'exploration': {key: _mean([r['exploration'][key] for r in results])
                        for key in ('seconds', 'keyframes', 'points', 'finetune_steps')},
        'wall_seconds_per_maze': _mean([max(x['wall_seconds'] for x in results
                                            if x['seed'] == seed)
                                        for seed in {r['seed'] for r in results}]),
    }
    summary['comparison'] = compare(rows)
    return summary


def compare(rows):
    """State whether memory beats no memory on success rate, and by how much."""
    if MEMORY not in rows or NO_MEMORY not in rows:
        return None
    with_memory, without = rows[MEMORY], rows[NO_MEMORY]
    margin = with_memory['success_rate'] - without['success_rate']
    sem = math.sqrt(with_memory['success_rate_sem'] ** 2 + without['success_rate_sem'] ** 2)
    verdict = 'beats' if margin > 0 else 'does not beat'
    return {'margin': margin, 'sem': sem, 'met': margin > 0,
            'text': f'{MEMORY} {verdict} {NO_MEMORY} on success rate: '
                    f'{100 * with_memory["success_rate"]:.0f}% against '
                    f'{100 * without["success_rate"]:.0f}% ({100 * margin:+.0f} points, '
                    f'± {100 * sem:.0f} s.e.)'}


def _fmt(value, digits=2, scale=1.0):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return f'{scale * value:.{digits}f}'


def markdown_table(summary):
    """Format the navigation table and the comparison as Markdown."""
    lines = ['| row | success | SPL | final distance (m) | came within radius | path length (m) '
             '| steps | planning ms / decision | localisation (s) | goal localised within '
             'radius |', '|---|---|---|---|---|---|---|---|---|---|']
    for name, row in summary['rows'].items():
        planning = '- | - | -'
        if not math.isnan(row['planning_ms']):
            planning = (f"{_fmt(row['planning_ms'], 0)} ({_fmt(row['planning_ms_after_first'], 0)}"
                        f" after the first) | {_fmt(row['localisation_ms'], 1, 0.001)} | "
                        f"{_fmt(row['localised_within_radius'], 0, 100)}%")
        lines.append(
            f"| {name} | {row['successes']}/{row['episodes']} "
            f"({_fmt(row['success_rate'], 0, 100)}% ± {_fmt(row['success_rate_sem'], 0, 100)}) "
            f"| {_fmt(row['spl'])} | {_fmt(row['final_distance'])} ± "
            f"{_fmt(row['final_distance_sem'])} | "
            f"{_fmt(row['came_within_radius_rate'], 0, 100)}% | {_fmt(row['path_length'], 1)} | "
            f"{_fmt(row['steps'], 0)} | {planning} |")
    settings = summary['settings']
    lines += ['', f"{summary['episodes']} episodes ({summary['mazes']} mazes, seeds "
              f"{summary['seeds'][0]}-{summary['seeds'][-1]}); success: stopped within "
              f"{settings['goal_radius']:g} m of the goal frame's position within "
              f"{settings['step_budget']} env steps ({settings['step_budget'] / 4:g} s); "
              f"shortest path to the goal {_fmt(summary['shortest_path_mean'], 1)} m on "
              f"average; exploration {settings['explore_steps']} env steps "
              f"({_fmt(summary['exploration']['keyframes'], 0)} keyframes, "
              f"{_fmt(summary['exploration']['finetune_steps'], 0)} finetuning steps).", '']
    if summary['comparison'] is not None:
        lines.append(f"- {'met' if summary['comparison']['met'] else 'missed'}: "
                     f"{summary['comparison']['text']}")
    return '\n'.join(lines)


def _walls(axis, layout, cell_size):
    layout = np.asarray(layout)
    half = layout.shape[0] * cell_size / 2
    axis.imshow(1 - layout, cmap='Greys', vmin=0, vmax=1.6, origin='lower',
                extent=(-half, half, -half, half), interpolation='nearest')


def plot(summary, results, path):
    """Success rate and final distance per row, and the drives of the first episode."""
    # lazy: matplotlib is slow to import; its Agg backend is chosen only to plot
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # lazy: after choosing the backend

    names = list(summary['rows'])
    colours = ['tab:blue', 'tab:orange', 'tab:grey', 'tab:green', 'tab:red'][:len(names)]
    figure, axes = plt.subplots(1, 3, figsize=(13, 4.2),
                                gridspec_kw={'width_ratios': [1, 1, 1.15]})
    x = np.arange(len(names))
    rates = [summary['rows'][n]['success_rate'] for n in names]
    errors = [summary['rows'][n]['success_rate_sem'] for n in names]
    within = [summary['rows'][n]['came_within_radius_rate'] for n in names]
    axes[0].bar(x - 0.2, rates, 0.4, yerr=errors, color=colours, capsize=3,
                label='success (stopped within radius)')
    axes[0].bar(x + 0.2, within, 0.4, color=colours, alpha=0.35, hatch='//',
                label='came within radius')
    axes[0].set_ylim(0, 1)
    axes[0].set_ylabel('rate')
    axes[0].legend(fontsize=7)
    for k, name in enumerate(names):
        final = [r['rows'][name]['final_distance'] for r in results]
        jitter = np.random.default_rng(k).uniform(-0.15, 0.15, len(final))
        axes[1].scatter(k + jitter, final, s=14, color=colours[k], alpha=0.8)
        axes[1].hlines(np.mean(final), k - 0.3, k + 0.3, color='k')
    axes[1].axhline(summary['settings']['goal_radius'], color='tab:red', ls='--', lw=1,
                    label='goal radius')
    axes[1].set_ylabel('final distance to goal (m)')
    axes[1].legend(fontsize=7)
    for axis in axes[:2]:
        axis.set_xticks(x, [n.replace(', ', ',\n') for n in names], fontsize=7)
        axis.grid(alpha=0.3, axis='y')
    first = results[0]
    _walls(axes[2], first['layout'], first['cell_size'])
    for k, name in enumerate(names):
        track = np.asarray(first['rows'][name]['trajectory'])
        axes[2].plot(track[:, 0], track[:, 1], color=colours[k], lw=1.4, label=name)
        believed = first['rows'][name]['believed_goal']
        if believed is not None:
            axes[2].plot(*believed, 'x', color=colours[k], ms=8, mew=2)
    axes[2].plot(*first['start_xy'], 'ko', ms=6, label='start')
    axes[2].add_patch(matplotlib.patches.Circle(first['goal_xy'],
                                                summary['settings']['goal_radius'],
                                                color='tab:red', fill=False, lw=1.5))
    axes[2].plot(*first['goal_xy'], '*', color='tab:red', ms=12, label='goal (x: believed)')
    goal = np.asarray(first['goal_rgb'], np.uint8)
    inset = axes[2].inset_axes([0.78, 0.78, 0.2, 0.2])
    inset.imshow(goal)
    inset.set_xticks([])
    inset.set_yticks([])
    inset.set_title('goal image', fontsize=6)
    axes[2].set_title(f"maze {first['seed']}, goal {first['goal']}", fontsize=8)
    axes[2].legend(fontsize=6, loc='lower left')
    axes[2].set_aspect('equal')
    figure.suptitle(f"Image-goal navigation, {summary['episodes']} episodes in "
                    f"{summary['mazes']} held-out mazes")
    figure.tight_layout()
    save_small_png(figure, path, dpi=80)
    plt.close(figure)


def _plain(value):
    """Return ``value`` with NaN as None, so results.json is standard JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def write_report(config, results):
    """Write results.json, results.md and navigation.png into ``out_dir``; return the summary."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = aggregate(results)
    (out / 'results.json').write_text(json.dumps(_plain(summary), indent=1, allow_nan=False))
    (out / 'results.md').write_text('# Image-goal navigation\n\n' + markdown_table(summary)
                                    + '\n')
    plot(summary, results, out / 'navigation.png')
    return summary
