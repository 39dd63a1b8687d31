"""
Play a recorded episode onto camera/* and odom.

ros2 launch mowm_ros episode_player.launch.py episode:=/path/to/episode.npz
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    default_params = os.path.join(
        get_package_share_directory('mowm_ros'), 'config', 'episode_player.yaml')
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='YAML parameters of the episode player'),
        DeclareLaunchArgument('episode', description='episode .npz file to play'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the player and its topics'),
        Node(
            package='mowm_ros',
            executable='episode_player',
            name='episode_player',
            namespace=LaunchConfiguration('namespace'),
            parameters=[LaunchConfiguration('params_file'),
                        {'episode': LaunchConfiguration('episode')}],
            output='screen',
        ),
    ])
