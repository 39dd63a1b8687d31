"""The world model launch file and the rviz config hold against the package's nodes."""

import importlib.metadata
from pathlib import Path

from launch_stubs import entities_of_type, load_launch_description
from mowm_ros.nodes.path_follower import PathFollowerNode
from mowm_ros.nodes.sim_robot import SimRobot
from mowm_ros.nodes.world_model_node import WorldModelNode
import pytest
from rclpy.parameter import Parameter
from ros_harness import wait_for
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]

RVIZ_TYPES = {
    'rviz_default_plugins/Image': 'sensor_msgs/msg/Image',
    'rviz_default_plugins/PointCloud2': 'sensor_msgs/msg/PointCloud2',
    'rviz_default_plugins/MarkerArray': 'visualization_msgs/msg/MarkerArray',
    'rviz_default_plugins/Path': 'nav_msgs/msg/Path',
    'rviz_default_plugins/Map': 'nav_msgs/msg/OccupancyGrid',
    'rviz_default_plugins/Odometry': 'nav_msgs/msg/Odometry',
}


def console_scripts():
    return {e.name for e in importlib.metadata.entry_points(group='console_scripts')
            if e.value.startswith('mowm_ros.')}


def test_world_model_launch_declares_its_arguments_and_nodes(monkeypatch):
    description = load_launch_description(
        REPO_ROOT / 'launch' / 'world_model.launch.py', monkeypatch, str(REPO_ROOT))
    arguments = {a.args[0]: a.kwargs.get('default_value')
                 for a in entities_of_type(description, 'DeclareLaunchArgument')}
    assert {'params_file', 'sim_params_file', 'follower_params_file', 'use_sim', 'follow_path',
            'rviz', 'namespace'} <= set(arguments)
    for name in ('params_file', 'sim_params_file', 'follower_params_file'):
        assert Path(arguments[name]).is_file(), arguments[name]
    (group,) = entities_of_type(description, 'GroupAction')
    actions = group.args[0]
    assert type(actions[0]).__name__ == 'PushRosNamespace'
    nodes = {n.kwargs['executable']: n for n in actions if type(n).__name__ == 'Node'}
    assert set(nodes) == {'sim_robot', 'world_model', 'mowm_path_follower', 'rviz2'}
    assert {'sim_robot', 'world_model', 'mowm_path_follower'} <= console_scripts()
    rviz_arguments = nodes['rviz2'].kwargs['arguments']
    assert Path(rviz_arguments[rviz_arguments.index('-d') + 1]).is_file()
    for name, argument in (('sim_robot', 'use_sim'), ('rviz2', 'rviz'),
                           ('mowm_path_follower', 'follow_path')):
        condition = nodes[name].kwargs['condition']
        assert condition.args[0].name == argument
    assert nodes['world_model'].kwargs['parameters'][0].name == 'params_file'
    # The follower runs in simulation by default and follows the world model's best path.
    assert arguments['follow_path'].name == 'use_sim'
    follower = nodes['mowm_path_follower'].kwargs
    assert follower['parameters'][0].name == 'follower_params_file'
    assert ('path', 'world_model/best_path') in follower['remappings']


def test_nodes_started_without_parameters_have_the_parameter_files_values(ros, tmp_path):
    """One source for each default: a node's code default is the value its YAML file names."""
    from episode_fixtures import synthetic_episode
    from mowm_ros.data.episode import save_episode
    from mowm_ros.nodes.episode_player import EpisodePlayer

    episode = tmp_path / 'ep.npz'
    save_episode(episode, synthetic_episode(frames=2))
    for name, factory, required in (
            ('world_model', WorldModelNode, {}), ('sim_robot', SimRobot, {}),
            ('path_follower', PathFollowerNode, {}),
            ('episode_player', EpisodePlayer, {'episode': str(episode)})):
        path = REPO_ROOT / 'config' / f'{name}.yaml'
        values = yaml.safe_load(path.read_text())[name]['ros__parameters']
        node = ros.add(factory(context=ros.context, parameter_overrides=[
            Parameter(k, value=v) for k, v in required.items()]))
        undeclared = [key for key in values if not node.has_parameter(key)]
        assert not undeclared, f'{path.name} names parameters {name} does not declare'
        differing = {key: (node.get_parameter(key).value, value) for key, value in values.items()
                     if node.get_parameter(key).value != pytest.approx(value, abs=1e-8)}
        assert not differing, f'{name}: code default != {path.name} value: {differing}'


@pytest.mark.ros
@pytest.mark.slow
def test_every_rviz_topic_is_published_by_the_nodes_with_its_type(ros, tmp_path):
    config = yaml.safe_load((REPO_ROOT / 'config' / 'mowm.rviz').read_text())
    displays = [d for d in config['Visualization Manager']['Displays'] if 'Topic' in d]
    assert len(displays) >= 7
    ros.add(SimRobot(context=ros.context))
    ros.add(WorldModelNode(context=ros.context,
                           parameter_overrides=[Parameter('finetune', value=False)]))
    probe = ros.node('probe')

    def published():
        topics = {}
        for name, namespace in probe.get_node_names_and_namespaces():
            if name == 'probe':
                continue
            for topic, types in probe.get_publisher_names_and_types_by_node(name, namespace):
                topics.setdefault(topic, set()).update(types)
        return topics

    wanted = {d['Topic']['Value'] for d in displays}
    assert wait_for(lambda: wanted <= set(published()), timeout=30), wanted - set(published())
    topics = published()
    for display in displays:
        topic = display['Topic']['Value']
        assert RVIZ_TYPES[display['Class']] in topics[topic], (display['Name'], topics[topic])


def test_launched_nodes_agree_on_the_camera_mount():
    from mowm_ros.extrinsics import CAMERA_MOUNT
    values = [yaml.safe_load((REPO_ROOT / 'config' / f'{name}.yaml').read_text())[name]
              ['ros__parameters']['camera_extrinsics']
              for name in ('sim_robot', 'world_model', 'episode_player')]
    assert values[0] == values[1] == values[2]
    assert values[0] == pytest.approx(list(CAMERA_MOUNT), abs=1e-8)
