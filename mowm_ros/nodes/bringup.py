"""
``mowm_bringup``: the simulated robot, the world model and the path follower in one process.

What runs where the ROS launch packages are absent (pip-only installs):

    mowm_bringup [--no-sim] [--no-follower] --ros-args --params-file config/world_model.yaml
        --params-file config/sim_robot.yaml --params-file config/path_follower.yaml

The path follower (on ``world_model/best_path``) starts with the simulated robot unless
``--no-follower``; ``--no-sim`` runs the world model alone.
"""

import argparse
import sys

from mowm_ros.nodes.path_follower import PathFollowerNode
from mowm_ros.nodes.runtime import run_nodes
from mowm_ros.nodes.sim_robot import SimRobot
from mowm_ros.nodes.world_model_node import WorldModelNode
from rclpy.utilities import remove_ros_args


def node_factories(use_sim, follow_path=None):
    """Return the node factories; ``follow_path`` None means: with the simulated robot."""
    factories = [WorldModelNode]
    if use_sim:
        factories.insert(0, SimRobot)
    if use_sim if follow_path is None else follow_path:
        def path_follower():
            return PathFollowerNode(cli_args=['--ros-args', '-r', 'path:=world_model/best_path'])
        factories.append(path_follower)
    return factories


def main(args=None):
    args = sys.argv if args is None else args
    parser = argparse.ArgumentParser(prog='mowm_bringup', description=__doc__.split('\n')[1])
    parser.add_argument('--no-sim', action='store_true',
                        help='only the world model: camera and odometry come from elsewhere')
    parser.add_argument('--no-follower', action='store_true',
                        help='do not drive cmd_vel along world_model/best_path')
    options = parser.parse_args(remove_ros_args(args)[1:])
    run_nodes(node_factories(not options.no_sim, False if options.no_follower else None),
              args=args)


if __name__ == '__main__':
    main()
