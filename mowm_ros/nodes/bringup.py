"""
``mowm_bringup``: the simulated robot and the world model in one process.

What runs where the ROS launch packages are absent (pip-only installs):

    mowm_bringup [--no-sim] --ros-args --params-file config/world_model.yaml
        --params-file config/sim_robot.yaml
"""

import argparse
import sys

from rclpy.utilities import remove_ros_args


def node_factories(use_sim):
    from mowm_ros.nodes.world_model_node import WorldModelNode
    factories = [WorldModelNode]
    if use_sim:
        from mowm_ros.nodes.sim_robot import SimRobot
        factories.insert(0, SimRobot)
    return factories


def main(args=None):
    from mowm_ros.nodes.runtime import run_nodes
    args = sys.argv if args is None else args
    parser = argparse.ArgumentParser(prog='mowm_bringup', description=__doc__.split('\n')[1])
    parser.add_argument('--no-sim', action='store_true',
                        help='only the world model: camera and odometry come from elsewhere')
    options = parser.parse_args(remove_ros_args(args)[1:])
    run_nodes(node_factories(not options.no_sim), args=args)


if __name__ == '__main__':
    main()
