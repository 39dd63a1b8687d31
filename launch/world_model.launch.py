"""
The world model with, optionally, the simulated Memory Maze robot, the path follower and rviz.

ros2 launch mowm_ros world_model.launch.py [use_sim:=true] [follow_path:=true] [rviz:=true]
    [namespace:=robot1] [autostart:=true] [use_sim_time:=false]
    [params_file:=my_world_model.yaml] [sim_params_file:=my_sim_robot.yaml]
    [follower_params_file:=my_path_follower.yaml] [checkpoint:=~/mowm_home]

``checkpoint:=DIR`` (a directory written by ``mowm adapt`` or ``mowm train``) overrides the
parameter file's checkpoint; left empty, the file's value holds.

The nodes are managed (lifecycle) nodes. With ``autostart:=true`` (the default) each configures
and activates itself; with ``autostart:=false`` they wait in ``unconfigured`` for a lifecycle
manager (Nav2's, see config/nav2_params.yaml) or ``ros2 lifecycle set``. With
``use_sim_time:=true`` the nodes run on /clock, which the simulated robot then publishes.
Under a ``namespace`` rviz gets a copy of config/mowm.rviz whose topics are in that namespace.

The path follower drives ``cmd_vel`` along the world model's ``best_path`` (the plan towards an
image sent to ``world_model/goal_image``); it starts by default in simulation only. On a real
robot set use_sim:=false and remap camera/* and odom to its drivers' topics.
"""

import os
import tempfile

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, LogInfo, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node, PushRosNamespace


def managed(executable, name, params_file, clock=None, overrides=None, **kwargs):
    """Return a mowm_ros lifecycle node: its parameter file, then autostart and the clock."""
    clock = clock or {'use_sim_time': LaunchConfiguration('use_sim_time')}
    return LifecycleNode(
        package='mowm_ros', executable=executable, name=name, namespace='',
        parameters=[LaunchConfiguration(params_file),
                    {'autostart': LaunchConfiguration('autostart'), **clock},
                    *([overrides] if overrides else [])],
        output='screen', **kwargs)


def world_model(context):
    """Return the world_model node; a non-empty checkpoint:= overrides the file's value."""
    checkpoint = LaunchConfiguration('checkpoint').perform(context).strip()
    overrides = {'checkpoint': os.path.expanduser(checkpoint)} if checkpoint else None
    return [managed('world_model', 'world_model', 'params_file', overrides=overrides)]


def namespaced_configs(context, config):
    """
    Return rviz2 on config/mowm.rviz, under a namespace on a copy with its topics in it.

    Next to that copy goes a copy of config/nav2_params.yaml likewise rewritten (its path is
    logged, for Nav2's params_file).
    """
    from mowm_ros.nodes.namespacing import write_namespaced_configs

    namespace = LaunchConfiguration('namespace').perform(context)
    actions = []
    rviz_config = os.path.join(config, 'mowm.rviz')
    if namespace.strip('/'):
        directory = tempfile.mkdtemp(prefix=f'mowm_{namespace.strip("/").replace("/", "_")}_')
        rviz_config, nav2_params = write_namespaced_configs(config, namespace, directory)
        actions.append(LogInfo(msg=f'Nav2 parameters for namespace {namespace}: {nav2_params}'))
    actions.append(Node(package='rviz2', executable='rviz2', name='rviz2',
                        arguments=['-d', rviz_config],
                        parameters=[{'use_sim_time': LaunchConfiguration('use_sim_time')}],
                        condition=IfCondition(LaunchConfiguration('rviz'))))
    return actions


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
        DeclareLaunchArgument('checkpoint', default_value='',
                              description='checkpoint directory of the world model (e.g. '
                                          'from mowm adapt); empty: the params_file value'),
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
        DeclareLaunchArgument('autostart', default_value='true',
                              description='the lifecycle nodes configure and activate '
                                          'themselves; false: a lifecycle manager does'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='run the nodes on /clock (the simulated robot '
                                          'publishes it)'),
        GroupAction([
            PushRosNamespace(LaunchConfiguration('namespace')),
            # The simulation is the clock: it steps on the wall clock and publishes /clock.
            managed('sim_robot', 'sim_robot', 'sim_params_file',
                    clock={'use_sim_time': False,
                           'publish_clock': LaunchConfiguration('use_sim_time')},
                    condition=IfCondition(LaunchConfiguration('use_sim'))),
            OpaqueFunction(function=world_model),
            managed('mowm_path_follower', 'path_follower', 'follower_params_file',
                    remappings=[('path', 'world_model/best_path')],
                    condition=IfCondition(LaunchConfiguration('follow_path'))),
            OpaqueFunction(function=namespaced_configs, kwargs={'config': config}),
        ]),
    ])
