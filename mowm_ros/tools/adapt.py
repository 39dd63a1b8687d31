"""
``mowm adapt BAG... --out DIR``: fine-tune a checkpoint on a robot's own rosbag2 recordings.

    mowm adapt ~/bags/home_run1 ~/bags/home_run2 --out ~/mowm_home --minutes 30
    world_model --ros-args -p checkpoint:=$HOME/mowm_home

1. Import the recordings with ``mowm data from-bag``'s importer (topics found by their
   common driver names unless named; one frame kept every 0.25 s, so model frames are 0.5 s
   apart as in training) and split them by time into training and held-out stretches
   (``data.stretches``), written under DIR/adapt/episodes.
2. Evaluate the base checkpoint on the held-out stretches (the memory benchmark's runner).
3. Fine-tune it with ``mowm train``'s Trainer in DIR/adapt/train for ``--minutes`` (counted
   over every run of the command) or ``--steps``, on the GPU when torch sees one.
4. Evaluate the result on the same stretches.
5. Write DIR as a checkpoint: config.json, model.safetensors, MODEL_CARD.md (data, budget,
   the before/after table) and report.json.

Every step is resumable: rerunning the command reuses the split, the finished evaluations and
the last training checkpoint; a larger budget trains on from there. Bad input (no matching
topics, no odometry, too few frames, another recording in DIR) stops with a message before
anything is written or trained.
"""

from dataclasses import asdict
import json
import logging
from pathlib import Path
import shutil
import sys

from mowm_ros.device import device_argument, DEVICE_HELP
from mowm_ros.tools.data import add_import_arguments, import_options

log = logging.getLogger(__name__)

PLAN_FILE = 'plan.json'
REPORT_FILE = 'report.json'
CARD_FILE = 'MODEL_CARD.md'


class AdaptError(ValueError):
    """Input or a directory adapt cannot use; the message says what is missing or wrong."""


def work_dir(out):
    return Path(out) / 'adapt'


def recording_identity(paths):
    """Return the path and size of every file of the bags, to tell a rerun on the same data."""
    # lazy: keeps `mowm` quick to start
    from mowm_ros.data.bag_reader import bag_paths

    files = []
    for bag in bag_paths(paths):
        bag = bag.resolve()
        members = sorted(p for p in bag.rglob('*') if p.is_file()) if bag.is_dir() else [bag]
        files.extend([str(p), p.stat().st_size] for p in members)
    return files


def train_config_for(args, base, base_config):
    """Return the TrainConfig of the fine-tune: the base's network and data settings."""
    # lazy: keeps `mowm` quick to start
    from mowm_ros.model.training import train_config_from_dict

    dataset = base_config.get('dataset', {})
    return train_config_from_dict({
        'data_dir': str(work_dir(args.out) / 'episodes'),
        'out_dir': str(work_dir(args.out) / 'train'), 'init_from': str(base),
        'steps': args.steps, 'batch_size': args.batch_size,
        'learning_rate': args.lr, 'warmup_steps': args.warmup, 'num_workers': args.workers,
        'seed': args.seed, 'device': args.device, 'log_every': 10,
        'checkpoint_every': args.checkpoint_every,
        'validate_every': args.checkpoint_every, 'validation_batches': 4,
        'dataset': {key: dataset[key] for key in ('frame_skip', 'memory_gap', 'cloud', 'render')
                    if key in dataset},
        'denoiser': base_config['denoiser'], 'diffusion': base_config['diffusion']})


def plan_inputs(args):
    """Check the arguments and the recordings; return what the adaptation needs (no writes)."""
    # lazy: keeps `mowm` quick to start
    from mowm_ros.data.bag_import import BagImportConfig
    from mowm_ros.data.stretches import StretchConfig
    from mowm_ros.model import checkpoint
    from mowm_ros.world_model import WorldModelConfig

    if args.minutes < 0 or args.steps < 0 or not (args.minutes or args.steps):
        raise AdaptError('give a budget: --minutes > 0 and/or --steps > 0')
    if args.batch_size < 1:
        raise AdaptError(f'--batch-size must be >= 1, got {args.batch_size}')
    # Absolute paths: the card names them, and evaluations are cached by checkpoint path.
    args.out = str(Path(args.out).expanduser().resolve())
    base = Path(args.base or checkpoint.default_checkpoint_dir()).expanduser().resolve()
    base_config = checkpoint.read_config(base)
    out = Path(args.out)
    if (out / checkpoint.CONFIG_FILE).exists() and not (work_dir(out) / PLAN_FILE).exists():
        raise AdaptError(f'{out} holds a checkpoint that mowm adapt did not write; choose '
                         'another --out')
    train_config = train_config_for(args, base, base_config)
    skip = int(train_config.dataset.get('frame_skip', 1))
    context_frames = train_config.denoiser.context_frames
    stretches = StretchConfig(context=args.context, horizon=args.horizon, frame_skip=skip,
                              held_out=args.held_out, window_frames=context_frames * skip + 1,
                              min_train_windows=args.batch_size)
    period = WorldModelConfig().context_interval_s / skip
    import_config = BagImportConfig(**import_options(args, depth='required'),
                                    size=train_config.denoiser.image_size, min_period=period)
    return base, train_config, stretches, import_config


def load_plan(work):
    try:
        return json.loads((work / PLAN_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise AdaptError(f'{work / PLAN_FILE} is unreadable ({exc}); pass --fresh to start '
                         'over') from None


def prepare_data(args, base, stretches, import_config):
    """Import and split the recordings once; return the plan (reused when it matches)."""
    # lazy: keeps `mowm` quick to start
    from mowm_ros.atomic import atomic_write_bytes
    from mowm_ros.data.bag_import import import_bag
    from mowm_ros.data.episode import save_episode
    from mowm_ros.data.stretches import split_recording

    work = work_dir(args.out)
    signature = json.loads(json.dumps({
        'recordings': recording_identity(args.bag), 'import': asdict(import_config),
        'split': asdict(stretches), 'base': str(base)}))
    plan = None if args.fresh else load_plan(work)
    if plan is not None:
        names = [n for kind in plan['episodes'].values() for n in kind]
        if plan['signature'] == signature and all(
                (work / 'episodes' / n).is_file() for n in names):
            return plan
        differing = sorted(key for key in signature if plan['signature'].get(key) !=
                           signature[key])
        raise AdaptError(f'{args.out} holds an adaptation of other {" and ".join(differing)}; '
                         'rerun the command that made it, pass --fresh to start over (it '
                         f'deletes {work}), or choose another --out')
    log.info('importing %s', ', '.join(map(str, args.bag)))
    recording = import_bag(args.bag, import_config)
    training, held_out = split_recording(recording, stretches)
    if args.fresh and work.exists():
        shutil.rmtree(work)
    episodes = work / 'episodes'
    names = {'train': [], 'held_out': []}
    for kind, parts in (('train', training), ('held_out', held_out)):
        for index, part in enumerate(parts):
            path = episodes / f'{kind}_{index:03d}.npz'
            save_episode(path, part)
            names[kind].append(path.name)
    meta = recording.meta
    plan = {'signature': signature, 'episodes': names,
            'recording': {key: meta[key] for key in (
                'sources', 'image_topic', 'depth_topic', 'info_topic', 'odom_topic',
                'extrinsics', 'extrinsics_from', 'camera_image_size', 'counts',
                'odometry_gaps', 'camera_info_changes', 'min_period')},
            'frames': {'kept': len(recording), 'seconds': float(
                (recording.stamp[-1] - recording.stamp[0]) / 1e9),
                'train': [len(p) for p in training], 'held_out': [len(p) for p in held_out]}}
    atomic_write_bytes(work / PLAN_FILE, json.dumps(plan, indent=1).encode())
    return plan


def replay_episodes(sources, fraction):
    """Return the episode files under ``sources`` (files or directories); none is an error."""
    # lazy: keeps `mowm` quick to start
    from mowm_ros.data.episode import episode_paths

    if sources and not 0.0 < fraction < 1.0:
        raise AdaptError(f'--replay-fraction must be between 0 and 1, got {fraction}')
    paths = []
    for source in sources or ():
        source = Path(source).expanduser()
        if not source.exists():
            raise AdaptError(f'--replay {source} does not exist')
        found = [source] if source.is_file() else episode_paths(source)
        if not found:
            raise AdaptError(f'--replay {source} holds no episodes (.npz)')
        paths += [Path(p).resolve() for p in found]
    return paths


def evaluate(work, name, checkpoint_dir, stretches, held_out, args):
    # lazy: keeps `mowm` quick to start
    from mowm_ros.evaluation.before_after import evaluate_stretches, stretch_eval_config

    config = stretch_eval_config(work / 'eval' / name, checkpoint_dir, stretches, len(held_out),
                                 use_depth=not args.no_depth, device=args.device,
                                 sampler_steps=args.sampler_steps)
    log.info('evaluating %s on %d held-out stretches', name, len(held_out))
    return evaluate_stretches(config, held_out, progress=not args.no_progress)


def fine_tune(args, train_config, plan, replay=()):
    """Train within the budget left; return (trainer state summary, the last checkpoint)."""
    # lazy: keeps `mowm` quick to start
    from mowm_ros.data.dataset import EpisodeDataset, ReplayMix
    from mowm_ros.tools.train import dataset_config, train

    episodes = work_dir(args.out) / 'episodes'
    options = dataset_config(train_config)
    train_set = EpisodeDataset([episodes / n for n in plan['episodes']['train']], options)
    val_set = EpisodeDataset([episodes / n for n in plan['episodes']['held_out']], options)
    replay_windows = 0
    if replay:
        replay_set = EpisodeDataset(replay, options)
        replay_windows = len(replay_set)
        train_set = ReplayMix(train_set, replay_set, args.replay_fraction)
        log.info('replaying %d windows of %d episodes as %.0f%% of each epoch', replay_windows,
                 len(replay), 100 * args.replay_fraction)

    def within_budget(trainer):
        if trainer.step == 0:
            trainer.record_validation()     # the base's loss on the held-out stretches
        spent = trainer.seconds / 60
        if (args.minutes and spent >= args.minutes) or \
                (args.steps and trainer.step >= args.steps):
            log.info('budget spent (%d steps, %.1f min): not training', trainer.step, spent)
            return False
        trainer.config.max_minutes = args.minutes - spent if args.minutes else 0.0
        return True

    trainer = train(train_config, train_set, val_set, fresh=False,
                    progress=not args.no_progress, before_fit=within_budget)
    validation = [h for h in trainer.history if 'val_loss' in h]
    return {'steps': trainer.step, 'minutes': trainer.seconds / 60,
            'device': str(trainer.device), 'windows': len(train_set),
            'batch_size': train_config.batch_size, 'learning_rate': train_config.learning_rate,
            'budget_minutes': args.minutes, 'budget_steps': args.steps,
            'replay': {'episodes': [str(p) for p in replay], 'windows': replay_windows,
                       'fraction': args.replay_fraction if replay else 0.0},
            'validation': validation[-1] if validation else None,
            'validation_before': validation[0] if validation else None}, \
        Path(train_config.out_dir) / 'last'


def write_checkpoint(out, trained, record):
    """DIR as a checkpoint: the trained weights and config, with the adaptation's record."""
    # lazy: keeps `mowm` quick to start
    from mowm_ros.model import checkpoint

    model, diffusion_config, config = checkpoint.load_checkpoint(trained)
    extra = {key: config[key] for key in ('training', 'dataset') if key in config}
    extra['adaptation'] = record
    checkpoint.save_checkpoint(out, model, diffusion_config, extra=extra)


def run(args):
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    # lazy: keeps `mowm` quick to start
    from mowm_ros.atomic import atomic_write_bytes
    from mowm_ros.data.bag_import import BagImportError
    from mowm_ros.data.episode import load_episode
    from mowm_ros.evaluation.before_after import compare, frames_line, markdown_table
    from mowm_ros.model.checkpoint import CheckpointError
    from mowm_ros.tools.adapt_card import model_card
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        base, train_config, stretches, import_config = plan_inputs(args)
        replay = replay_episodes(args.replay, args.replay_fraction)
        plan = prepare_data(args, base, stretches, import_config)
    except (AdaptError, BagImportError, CheckpointError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    work = work_dir(args.out)
    held_out = [load_episode(work / 'episodes' / name) for name in plan['episodes']['held_out']]
    before = evaluate(work, 'before', base, stretches, held_out, args)
    training, trained = fine_tune(args, train_config, plan, replay)
    after = evaluate(work, f'after_step_{training["steps"]:07d}', trained, stretches, held_out,
                     args)
    comparison = compare(before, after)
    record = {'base': str(base), 'plan': {k: plan[k] for k in ('recording', 'frames')},
              'split': asdict(stretches), 'training': training,
              'before': before, 'after': after, 'comparison': comparison}
    write_checkpoint(args.out, trained, {key: record[key] for key in (
        'base', 'plan', 'split', 'training', 'comparison')})
    atomic_write_bytes(Path(args.out) / REPORT_FILE, json.dumps(record, indent=1).encode())
    atomic_write_bytes(Path(args.out) / CARD_FILE, model_card(args.out, record).encode())
    print(markdown_table(comparison, 'base', 'adapted'))
    print(f'\n{frames_line(after)}\ncheckpoint: {args.out} (checkpoint:={args.out}); card: '
          f'{Path(args.out) / CARD_FILE}')
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'adapt', help='fine-tune the world model on your rosbag2 recordings, evaluated before '
        'and after on held-out stretches; writes a checkpoint the node loads')
    add_import_arguments(parser)
    parser.add_argument('--out', required=True,
                        help='checkpoint directory to write (and resume from)')
    parser.add_argument('--base', default='',
                        help="checkpoint to start from ('' = the shipped one)")
    parser.add_argument('--minutes', type=float, default=30.0,
                        help='training time budget over all runs (default 30; 0: --steps only)')
    parser.add_argument('--steps', type=int, default=0,
                        help='training steps in all (default 0: as many as --minutes allows)')
    parser.add_argument('--replay', nargs='+', default=[], metavar='EPISODES',
                        help='episodes (.npz files or directories, e.g. from mowm data '
                        'generate) of the domain the base was trained on, replayed while '
                        'fine-tuning so it is not forgotten')
    parser.add_argument('--replay-fraction', type=float, default=0.25,
                        help='share of each epoch drawn from --replay (default 0.25)')
    parser.add_argument('--batch-size', type=int, default=24)
    parser.add_argument('--lr', type=float, default=1e-4, help='learning rate (default 1e-4)')
    parser.add_argument('--warmup', type=int, default=50, help='learning-rate warm-up steps')
    parser.add_argument('--checkpoint-every', type=int, default=100,
                        help='training steps between resumable checkpoints')
    parser.add_argument('--workers', type=int, default=1, help='data-loader processes')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--context', type=int, default=60,
                        help='model frames (0.5 s apart) observed per held-out stretch')
    parser.add_argument('--horizon', type=int, default=20,
                        help='model frames predicted per held-out stretch')
    parser.add_argument('--held-out', type=float, default=0.2,
                        help='fraction of the recording held out for evaluation (default 0.2)')
    parser.add_argument('--sampler-steps', type=int, default=4,
                        help='DDIM steps per predicted frame in the evaluation')
    parser.add_argument('--device', default='auto', type=device_argument,
                        help=f'device for training and evaluation, {DEVICE_HELP} (auto: the GPU '
                             'when torch sees one)')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: default)')
    parser.add_argument('--fresh', action='store_true',
                        help='start over: delete DIR/adapt (split, evaluations, training)')
    parser.add_argument('--no-progress', action='store_true')
    parser.set_defaults(func=run)
