"""
The world model with, optionally, the simulated Memory Maze robot and rviz.

ros2 launch mowm_ros world_model.launch.py [use_sim:=true] [rviz:=true] [namespace:=robot1]
    [params_file:=my_world_model.yaml] [sim_params_file:=my_sim_robot.yaml]

On a real robot set use_sim:=false and remap camera/* and odom to its drivers' topics.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace


def generate_launch_description():
    share = get_package_share_directory('mowm_ros')
    config = os.path.join(share, 'config')
    return LaunchDescription([
        DeclareLaunchArgument('params_file',
                              default_value=os.path.join(config, 'world_model.yaml'),
                              description='YAML parameters of the world_model node'),
        DeclareLaunchArgument('sim_params_file',
                              default_value=os.path.join(config, 'sim_robot.yaml'),
                              description='YAML parameters of the simulated robot'),
        DeclareLaunchArgument('use_sim', default_value='true',
                              description='start the simulated Memory Maze robot'),
        DeclareLaunchArgument('rviz', default_value='true',
                              description='start rviz2 with config/mowm.rviz'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the nodes and their topics'),
        GroupAction([
            PushRosNamespace(LaunchConfiguration('namespace')),
            Node(package='mowm_ros', executable='sim_robot', name='sim_robot',
                 parameters=[LaunchConfiguration('sim_params_file')], output='screen',
                 condition=IfCondition(LaunchConfiguration('use_sim'))),
            Node(package='mowm_ros', executable='world_model', name='world_model',
                 parameters=[LaunchConfiguration('params_file')], output='screen'),
            Node(package='rviz2', executable='rviz2', name='rviz2',
                 arguments=['-d', os.path.join(config, 'mowm.rviz')],
                 condition=IfCondition(LaunchConfiguration('rviz'))),
        ]),
    ])
