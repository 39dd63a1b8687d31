"""
Before and after adapting a checkpoint: the memory benchmark on held-out stretches of a recording.

Both checkpoints are evaluated by the memory benchmark's runner on the same stretches (see
``data.stretches``), with the same settings and noise: the model observes the C frames of a
stretch, then predicts the H that follow along their recorded poses; PSNR and SSIM over all
predicted frames, revisits and novel ones, for the rows without memory and with all memories
(RGB-D), or with the episodic memory in place of all three (no depth: ``rgb-only``).
"""

from mowm_ros.evaluation.report import aggregate
from mowm_ros.evaluation.rows import rows_from_keys
from mowm_ros.evaluation.runner import EvalConfig, run_evaluation

ROW_KEYS = {True: ('stm', 'all'), False: ('stm', 'episodic')}   # by whether depth is used
METRICS = (('psnr_all', 'PSNR all', 2), ('psnr_revisit', 'PSNR revisit', 2),
           ('psnr_novel', 'PSNR novel', 2), ('ssim_all', 'SSIM all', 3),
           ('ssim_revisit', 'SSIM revisit', 3), ('ssim_novel', 'SSIM novel', 3))


def stretch_eval_config(out_dir, checkpoint, stretches, count, use_depth=True, **settings):
    """Return the EvalConfig of ``count`` held-out stretches (``stretches``: a StretchConfig)."""
    return EvalConfig(
        out_dir=str(out_dir), checkpoint=str(checkpoint), episodes=count, seed_start=0,
        context=stretches.context, horizon=stretches.horizon,
        frame_skip=stretches.frame_skip, episode_steps=stretches.stretch_frames,
        rows=rows_from_keys(ROW_KEYS[use_depth]),
        condition='rgbd' if use_depth else 'rgb-only', **settings)


def evaluate_stretches(config, stretches, progress=True):
    """Evaluate (or reuse the finished results of) every stretch; return the summary."""
    results = run_evaluation(config, lambda seed: stretches[seed - config.seed_start],
                             progress=progress)
    return aggregate(results)


def compare(before, after):
    """{row: {'before', 'after', 'change'}: {metric: value}} of two summaries."""
    table = {}
    for name, row in before['rows'].items():
        values = {'before': {key: row[key] for key, _, _ in METRICS},
                  'after': {key: after['rows'][name][key] for key, _, _ in METRICS}}
        values['change'] = {key: values['after'][key] - values['before'][key]
                            for key, _, _ in METRICS}
        table[name] = values
    return table


def _cell(value, digits, sign=''):
    return '-' if value != value else f'{value:{sign}.{digits}f}'   # NaN: no such frames


def markdown_table(comparison, before_name='before', after_name='after'):
    """Format the before/after table as Markdown, each row's change beneath it."""
    lines = ['| row | checkpoint | ' + ' | '.join(title for _, title, _ in METRICS) + ' |',
             '|---|---|' + '---|' * len(METRICS)]
    for name, values in comparison.items():
        for which, label, sign in (('before', before_name, ''), ('after', after_name, ''),
                                   ('change', 'change', '+')):
            cells = ' | '.join(_cell(values[which][key], digits, sign)
                               for key, _, digits in METRICS)
            lines.append(f'| {name if which == "before" else ""} | {label} | {cells} |')
    return '\n'.join(lines)


def frames_line(summary):
    """Say how many stretches and frames the table is over."""
    count = summary['episodes']
    return (f"{count} held-out stretch{'es' * (count != 1)}, {summary['frames']} predicted "
            f"frames, {summary['revisit_frames']} of them revisits")
