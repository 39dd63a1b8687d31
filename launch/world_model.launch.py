"""
The world model with, optionally, the simulated Memory Maze robot, the path follower and rviz.

ros2 launch mowm_ros world_model.launch.py [use_sim:=true] [follow_path:=true] [rviz:=true]
    [namespace:=robot1] [params_file:=my_world_model.yaml] [sim_params_file:=my_sim_robot.yaml]
    [follower_params_file:=my_path_follower.yaml]

The path follower drives ``cmd_vel`` along the world model's ``best_path`` (the plan towards an
image sent to ``world_model/goal_image``); it starts by default in simulation only. On a real
robot set use_sim:=false and remap camera/* and odom to its drivers' topics.
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
        DeclareLaunchArgument('follower_params_file',
                              default_value=os.path.join(config, 'path_follower.yaml'),
                              description='YAML parameters of the path follower'),
        DeclareLaunchArgument('follow_path', default_value=LaunchConfiguration('use_sim'),
                              description='drive cmd_vel along world_model/best_path '
                                          '(default: as use_sim)'),
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
            Node(package='mowm_ros', executable='mowm_path_follower', name='path_follower',
                 parameters=[LaunchConfiguration('follower_params_file')],
                 remappings=[('path', 'world_model/best_path')], output='screen',
                 condition=IfCondition(LaunchConfiguration('follow_path'))),
            Node(package='rviz2', executable='rviz2', name='rviz2',
                 arguments=['-d', os.path.join(config, 'mowm.rviz')],
                 condition=IfCondition(LaunchConfiguration('rviz'))),
        ]),
    ])
