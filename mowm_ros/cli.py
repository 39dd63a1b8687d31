"""The ``mowm`` command: library-level tools (no ROS needed) as subcommands."""

import argparse
import importlib
import sys

# Each module defines add_parser(subparsers) and sets ``func`` on its parser.
SUBCOMMAND_MODULES = (
    'mowm_ros.tools.info',
    'mowm_ros.tools.data',
    'mowm_ros.tools.train',
    'mowm_ros.tools.adapt',
    'mowm_ros.tools.bench',
    'mowm_ros.tools.demo',
    'mowm_ros.tools.eval',
    'mowm_ros.tools.view',
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog='mowm', description='mowm_ros: memory-augmented diffusion world model tools.')
    subparsers = parser.add_subparsers(dest='command', required=True)
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
