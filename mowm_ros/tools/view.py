"""
``mowm view``: log the world model's topics to Rerun and serve the web viewer on this machine.

    mowm view [--port 9090] [--rrd out/view.rrd]     # prints the viewer's URL; Ctrl-C ends it

For ``--ros-args`` (namespace, remappings, parameters) run ``mowm_view`` instead.
"""

from mowm_ros.viz import add_view_arguments


def run(args):
    # lazy: keeps `mowm` quick to start, and rclpy out of the other commands
    from mowm_ros.nodes.rerun_view import run_view
    return run_view(args)


def add_parser(subparsers):
    parser = subparsers.add_parser('view', help='Rerun web viewer of the world model topics')
    add_view_arguments(parser)
    parser.set_defaults(func=run)
