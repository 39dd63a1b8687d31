"""
The Rerun view of the world model: a recording (.rrd) and a local web viewer.

Rerun (``rerun-sdk``) is an optional extra (``pip install mowm_ros[view]``): without it
``import_rerun`` says so in one line and returns None, and callers turn the view off.
Nothing here imports rclpy; ``mowm_ros.nodes.rerun_view`` feeds it from ROS topics.
"""

import importlib

MISSING_MESSAGE = ('view: rerun-sdk is not installed, so no Rerun recording or viewer '
                   '(pip install "mowm_ros[view]" turns it on)')


def import_rerun(log=print):
    """Return the ``rerun`` module, or None after one line through ``log`` when it is missing."""
    try:
        return importlib.import_module('rerun')
    except ImportError:
        log(MISSING_MESSAGE)
        return None


def add_view_arguments(parser):
    """Add the options of ``mowm view`` and ``mowm_view`` (here: argparse only, no rclpy)."""
    parser.add_argument('--port', type=int, default=9090,
                        help='HTTP port of the web viewer (its data goes on port + 1)')
    parser.add_argument('--rrd', default=None, help='also write the recording to this file')
    parser.add_argument('--cloud-points', type=int, default=20_000,
                        help='memory cloud points logged per update (subsampled)')
    return parser
