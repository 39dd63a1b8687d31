"""The model card ``mowm adapt`` writes beside an adapted checkpoint: data, budget, results."""

from datetime import datetime, timezone

from mowm_ros.evaluation.before_after import frames_line, markdown_table


def _extrinsics(recording):
    source = recording['extrinsics_from']
    values = ' '.join(f'{v:.4g}' for v in recording['extrinsics'])
    where = source['source'] + (f" ({' -> '.join(source['chain'])})" if 'chain' in source
                                else '')
    note = ''.join(f'; {source[key]}' for key in ('tf_static_not_used', 'argument_not_used')
                   if key in source)
    return f'{values} (x y z qx qy qz qw, base <- camera optical), from {where}{note}'


def _count(items, noun):
    return f"{len(items)} {noun}{'es' if noun.endswith('h') else 's'}" if len(items) != 1 \
        else f'1 {noun}'


def _plural(count, noun):
    return f"{count} {noun}{'s' * (count != 1)}"


def _budget(training):
    parts = []
    if training['budget_minutes']:
        parts.append(f"{training['budget_minutes']:g} min")
    if training['budget_steps']:
        parts.append(_plural(training['budget_steps'], 'step'))
    return ' or '.join(parts)


def _table(rows):
    return '\n'.join(['| | |', '|---|---|'] + [f'| {name} | {value} |' for name, value in rows])


def data_rows(record):
    """Return the (name, value) rows describing the recordings and their split."""
    recording, frames = record['plan']['recording'], record['plan']['frames']
    split, counts = record['split'], recording['counts']
    width, height = recording['camera_image_size']
    bags = '<br>'.join(f"`{s['path']}` ({s['images']} images, {s['span']})"
                       for s in recording['sources'])
    topics = ', '.join(f'`{recording[key]}`' for key in
                       ('image_topic', 'depth_topic', 'info_topic', 'odom_topic')
                       if recording[key])
    guard = split['horizon'] * split['frame_skip']
    return [
        ('recordings', bags), ('topics', topics),
        ('camera', f"{width}x{height} recorded, centre-cropped and resized to the model's "
                   'square view'),
        ('extrinsics', _extrinsics(recording)),
        ('frames', f"{frames['kept']} kept ({frames['seconds']:.0f} s, one every "
                   f"{recording['min_period']:g} s) of {counts['images_read']} images read; "
                   f"{counts.get('odometry_gaps', 0)} odometry gaps, "
                   f"{counts.get('camera_info_changes', 0)} camera_info changes"),
        ('training', f"{sum(frames['train'])} frames in {_count(frames['train'], 'stretch')}, "
                     f"{record['training']['windows']} windows"),
        ('held out', f"{_count(frames['held_out'], 'stretch')} of {split['context']} observed "
                     f"+ {split['horizon']} predicted model frames "
                     f"({sum(frames['held_out'])} frames), {guard} frames after each left out "
                     'of training'),
    ]


def training_rows(training):
    """Return the (name, value) rows of the budget and what the fine-tune did."""
    def loss(entry):
        return (f"{entry['val_loss']:.4f} with the render, "
                f"{entry.get('val_loss_no_render', float('nan')):.4f} without "
                f"(step {entry['step']})")

    first, last = training.get('validation_before'), training['validation']
    val_text = 'not measured' if not last else loss(last) if first == last else \
        f'{loss(first)} -> {loss(last)}'
    return [('budget', _budget(training)),
            ('trained', f"{_plural(training['steps'], 'step')} in "
                        f"{training['minutes']:.1f} min on {training['device']}, batch "
                        f"{training['batch_size']}, learning rate "
                        f"{training['learning_rate']:g}"),
            ("replay of the base's domain", _replay(training.get('replay'))),
            ('validation v-loss on the held-out stretches', val_text)]


def _replay(replay):
    if not replay or not replay['episodes']:
        return ("none: the base's own domain may be forgotten (pass --replay with episodes "
                'of it)')
    return (f"{100 * replay['fraction']:.0f}% of each epoch from {replay['windows']} windows "
            f"of {len(replay['episodes'])} episodes")


def model_card(out, record):
    """Return the Markdown card of an adaptation ``record`` (see tools/adapt.py) in ``out``."""
    stamp = datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    return f"""# {out}: a mowm_ros checkpoint adapted to your recordings

Fine-tuned from `{record['base']}` by `mowm adapt` ({stamp}). Load it with the node
parameter `checkpoint:={out}` or `WorldModelConfig(checkpoint='{out}')`. The work files
(split, evaluations, resumable training state) are in `{out}/adapt`; `report.json` holds
every number below.

## Data

{_table(data_rows(record))}

## Adaptation

{_table(training_rows(record['training']))}

## Before and after, on the held-out stretches

{markdown_table(record['comparison'], 'base', 'adapted')}

{frames_line(record['after'])}. The memory benchmark's protocol (`mowm eval memory-maze`): the
model observes a stretch's first frames with their poses (and depth), then predicts the rest
along the recorded poses; a revisit is a frame showing what the stretch saw 10 s or more
before.

## Limits

Adapted on the recordings above only: other places, cameras or lighting may be out of
distribution again. Held-out stretches come from the same recordings as the training data,
so the table measures adaptation to this environment, not generalisation beyond it.
"""
