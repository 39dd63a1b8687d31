"""The world model launch file and the rviz config hold against the package's nodes."""

import importlib.metadata
from pathlib import Path
from types import SimpleNamespace

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
    assert arguments['autostart'] == 'true' and arguments['use_sim_time'] == 'false'
    assert arguments['checkpoint'] == ''
    (group,) = entities_of_type(description, 'GroupAction')
    actions = group.args[0]
    assert type(actions[0]).__name__ == 'PushRosNamespace'
    functions = {a.kwargs['function'].__name__: a for a in actions
                 if type(a).__name__ == 'OpaqueFunction'}

    def world_model_node(checkpoint):
        context = SimpleNamespace(launch_configurations={'checkpoint': checkpoint})
        (node,) = functions['world_model'].kwargs['function'](context)
        return node

    # checkpoint:= overrides the parameter file's value, after it; empty leaves the file's.
    adapted = world_model_node('/robots/home_adapted')
    assert adapted.kwargs['parameters'][2] == {'checkpoint': '/robots/home_adapted'}
    actions = list(actions) + [world_model_node('')]
    nodes = {n.kwargs['executable']: n for n in actions if type(n).__name__ == 'LifecycleNode'}
    assert len(nodes['world_model'].kwargs['parameters']) == 2
    assert set(nodes) == {'sim_robot', 'world_model', 'mowm_path_follower'}
    assert set(nodes) <= console_scripts()
    for node in nodes.values():        # autostart and the clock reach every managed node
        overrides = node.kwargs['parameters'][1]
        assert overrides['autostart'].name == 'autostart'
    assert nodes['world_model'].kwargs['parameters'][1]['use_sim_time'].name == 'use_sim_time'
    assert nodes['sim_robot'].kwargs['parameters'][1]['publish_clock'].name == 'use_sim_time'
    configs = functions['namespaced_configs']
    context = SimpleNamespace(launch_configurations={'namespace': ''})
    (rviz,) = configs.kwargs['function'](context, **configs.kwargs['kwargs'])
    nodes['rviz2'] = rviz
    rviz_arguments = rviz.kwargs['arguments']
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
def launched_configs(monkeypatch, namespace):
    """Run the launch file's config step for ``namespace``: (rviz text, Nav2 params text)."""
    description = load_launch_description(
        REPO_ROOT / 'launch' / 'world_model.launch.py', monkeypatch, str(REPO_ROOT))
    (group,) = entities_of_type(description, 'GroupAction')
    (configs,) = [a for a in group.args[0] if type(a).__name__ == 'OpaqueFunction'
                  and a.kwargs['function'].__name__ == 'namespaced_configs']
    context = SimpleNamespace(launch_configurations={'namespace': namespace})
    actions = configs.kwargs['function'](context, **configs.kwargs['kwargs'])
    rviz = actions[-1].kwargs['arguments'][-1]
    if not namespace:
        return Path(rviz).read_text(), (REPO_ROOT / 'config' / 'nav2_params.yaml').read_text()
    (log,) = [a for a in actions if type(a).__name__ == 'LogInfo']
    nav2 = log.kwargs['msg'].rsplit(': ', 1)[1]
    assert Path(rviz).parent == Path(nav2).parent
    return Path(rviz).read_text(), Path(nav2).read_text()


NAV2_TYPES = {'costmap': 'nav_msgs/msg/OccupancyGrid', 'cloud': 'sensor_msgs/msg/PointCloud2'}


@pytest.mark.parametrize('namespace', ['', 'robot1'])
def test_every_rviz_and_nav2_topic_is_published_by_the_nodes_with_its_type(
        ros, monkeypatch, namespace):
    """Launched with namespace:=robot1 the configs the launch writes name the robot's topics."""
    from mowm_ros.nodes.namespacing import nav2_topics
    rviz_text, nav2_text = launched_configs(monkeypatch, namespace)
    config = yaml.safe_load(rviz_text)
    displays = [d for d in config['Visualization Manager']['Displays'] if 'Topic' in d]
    assert len(displays) >= 7
    ros.add(SimRobot(context=ros.context, namespace=namespace))
    ros.add(WorldModelNode(context=ros.context, namespace=namespace,
                           parameter_overrides=[Parameter('finetune', value=False)]))
    probe = ros.node('probe')

    def published():
        topics = {}
        for name, node_namespace in probe.get_node_names_and_namespaces():
            if name == 'probe':
                continue
            for topic, types in probe.get_publisher_names_and_types_by_node(name,
                                                                            node_namespace):
                topics.setdefault(topic, set()).update(types)
        return topics

    wanted = {d['Topic']['Value'] for d in displays} | set(nav2_topics(nav2_text))
    assert all(topic.startswith(f'/{namespace}/') for topic in wanted) if namespace else True
    wait_for(lambda: wanted <= set(published()), timeout=30,
             what=lambda: f'topics {wanted - set(published())}')
    topics = published()
    for display in displays:
        topic = display['Topic']['Value']
        assert RVIZ_TYPES[display['Class']] in topics[topic], (display['Name'], topics[topic])
    for topic in nav2_topics(nav2_text):
        assert NAV2_TYPES[topic.rsplit('/', 1)[1]] in topics[topic], topic


def test_two_robots_in_two_namespaces_do_not_see_each_others_data(ros):
    """robot1 (64 px camera) and robot2 (32 px) on one domain: each model sees its own only."""
    from diagnostic_msgs.msg import DiagnosticArray
    from ros_harness import Inbox

    inbox = Inbox(ros.node('listener'), [('/diagnostics', DiagnosticArray, 10)])
    robots, models = {}, {}
    for namespace, size in (('robot1', 64), ('robot2', 32)):
        robots[namespace] = ros.add(SimRobot(
            context=ros.context, namespace=namespace, parameter_overrides=[
                Parameter('mode', value='explore'), Parameter('image_size', value=size),
                Parameter('seed', value=size), Parameter('rate_hz', value=8.0)]))
        models[namespace] = ros.add(WorldModelNode(
            context=ros.context, namespace=namespace, parameter_overrides=[
                Parameter('finetune', value=False), Parameter('prediction_period_s', value=60.0),
                Parameter('extrinsics_from_tf', value=False),
                Parameter('torch_threads', value=1)]))
    for namespace, model in models.items():
        wait_for(lambda: model.model is not None and model.model.frames_observed >= 2,
                 timeout=60, what=f'{namespace} observing frames')

    # From now on (camera_info known) the other robot's camera_info or images would be
    # rejected for their size, while both robots keep publishing.
    def size_rejections(model):
        return {key: model.rejected.get(key, 0) for key in ('camera_info', 'image')}

    rejected = {namespace: size_rejections(model) for namespace, model in models.items()}
    observed = {namespace: model.model.frames_observed for namespace, model in models.items()}
    for namespace, model in models.items():
        wait_for(lambda: model.model.frames_observed >= observed[namespace] + 4, timeout=60,
                 what=f'{namespace} observing four more frames')
    for namespace, size in (('robot1', 64), ('robot2', 32)):
        model = models[namespace]
        assert model.camera[1] == (size, size)
        assert model.frames_received <= robots[namespace].frames_published
        assert size_rejections(model) == rejected[namespace], (namespace, model.rejected)
    # /diagnostics is global, as diagnostic tools expect: the hardware id tells them apart.
    wait_for(lambda: {'/robot1/world_model', '/robot2/world_model'} <= {
        s.hardware_id for m in inbox.get('/diagnostics') for s in m.status},
        what='diagnostics of both world models, told apart by hardware_id')


def test_launched_nodes_agree_on_the_camera_mount():
    from mowm_ros.extrinsics import CAMERA_MOUNT
    values = [yaml.safe_load((REPO_ROOT / 'config' / f'{name}.yaml').read_text())[name]
              ['ros__parameters']['camera_extrinsics']
              for name in ('sim_robot', 'world_model', 'episode_player')]
    assert values[0] == values[1] == values[2]
    assert values[0] == pytest.approx(list(CAMERA_MOUNT), abs=1e-8)
