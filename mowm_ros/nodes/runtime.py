"""Process entry points shared by the nodes: init, spin, clean shutdown."""

import sys

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor


def run_nodes(node_factories, args=None, num_threads=4):
    """
    Create the nodes in one process and spin them on a multi-threaded executor.

    ``node_factories`` are callables taking no argument; ``--ros-args`` (params files,
    remappings) in ``args`` apply to every node.
    """
    try:
        with rclpy.init(args=args):
            try:
                nodes = [factory() for factory in node_factories]
            except (ValueError, OSError) as exc:
                print(f'mowm_ros: cannot start: {exc}', file=sys.stderr)
                sys.exit(1)
            executor = MultiThreadedExecutor(num_threads=num_threads)
            for node in nodes:
                executor.add_node(node)
            try:
                executor.spin()
            finally:
                executor.shutdown()
                for node in nodes:
                    close = getattr(node, 'close', None)
                    if close is not None:
                        close()
                    node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
