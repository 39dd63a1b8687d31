"""
``mowm train``: train the denoiser on generated episodes, resumably, on CPU, GPU or DDP.

    mowm train --config config/train_maze64.yaml
    torchrun --nproc_per_node=4 -m mowm_ros.tools.train --config config/train_maze64.yaml
"""

import argparse
import logging
import sys


def dataset_config(config):
    """Return the DatasetConfig of a TrainConfig (its ``dataset`` options and network sizes)."""
    # lazy: keeps `mowm` quick to start
    from mowm_ros.data.cloud import CloudConfig, RenderConfig
    from mowm_ros.data.dataset import DatasetConfig

    options = dict(config.dataset)
    cloud = CloudConfig(**options.pop('cloud', {}))
    render = RenderConfig(**options.pop('render', {}))
    return DatasetConfig(context=config.denoiser.context_frames, size=config.denoiser.image_size,
                         cloud=cloud, render=render, **options)


def build_datasets(config):
    """Return (train, validation) EpisodeDatasets split by episode seed."""
    # lazy: keeps `mowm` quick to start
    from mowm_ros.data.dataset import EpisodeDataset, split_by_seed
    from mowm_ros.data.episode import episode_paths

    options = dataset_config(config)
    paths = episode_paths(config.data_dir)
    if not paths:
        raise ValueError(f'no episodes (*.npz) in {config.data_dir}; generate some with '
                         f'`mowm data generate --out {config.data_dir}`')
    train_paths, val_paths = split_by_seed(paths, config.val_fraction)
    return (EpisodeDataset(train_paths, options, progress=True),
            EpisodeDataset(val_paths, options, progress=True) if val_paths else None)


def train(config, train_set, val_set, fresh=False, progress=True, before_fit=None):
    """
    Train on the datasets and return the Trainer once it stops (steps or minutes).

    It resumes from ``out_dir/last`` unless ``fresh``, else starts from ``config.init_from``
    when set. ``before_fit(trainer)`` runs once the state is loaded and may return False to
    skip the fit (a budget already spent).
    """
    # lazy: keeps `mowm` quick to start
    from mowm_ros.model.training import Trainer

    trainer = Trainer(config, train_set, val_set)
    resumed = False if fresh else trainer.resume()
    if not resumed and config.init_from:
        trainer.initialize_from(config.init_from)
    logging.info('training on %d windows (%d validation), %s, world size %d',
                 len(train_set), len(val_set) if val_set else 0, trainer.device,
                 trainer.dist.world_size)
    if before_fit is None or before_fit(trainer) is not False:
        trainer.fit(progress=progress)
    trainer.dist.close()
    return trainer


def parse_overrides(pairs):
    """KEY=VALUE pairs (VALUE parsed as YAML) into a dict."""
    # lazy: keeps `mowm` quick to start
    import yaml
    overrides = {}
    for pair in pairs or []:
        key, separator, value = pair.partition('=')
        if not separator:
            raise ValueError(f'override {pair!r} is not KEY=VALUE')
        overrides[key] = yaml.safe_load(value)
    return overrides


def run(args):
    # lazy: keeps `mowm` quick to start
    from mowm_ros.model.training import load_train_config
    import torch

    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    try:
        config = load_train_config(args.config, parse_overrides(args.set))
    except (OSError, ValueError, TypeError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        train_set, val_set = build_datasets(config)
    except ValueError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    try:
        train(config, train_set, val_set, fresh=args.fresh, progress=not args.no_progress)
    except ValueError as exc:       # no limit, or too few windows for a batch
        print(f'error: {exc}', file=sys.stderr)
        return 2
    return 0


def add_arguments(parser):
    parser.add_argument('--config', required=True, help='training YAML (see config/)')
    parser.add_argument('--set', nargs='*', metavar='KEY=VALUE',
                        help='override top-level settings, e.g. steps=2000 max_minutes=30')
    parser.add_argument('--fresh', action='store_true',
                        help='ignore out_dir/last instead of resuming from it')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: default)')
    parser.add_argument('--no-progress', action='store_true')
    parser.set_defaults(func=run)


def add_parser(subparsers):
    add_arguments(subparsers.add_parser(
        'train', help='train the world model denoiser (resumable; DDP under torchrun)'))


def main(argv=None):
    parser = argparse.ArgumentParser(prog='mowm train')
    add_arguments(parser)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
