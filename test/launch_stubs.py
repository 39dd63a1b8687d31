"""
Small stand-ins for the ROS 2 ``launch`` / ``launch_ros`` APIs, for checking launch files here.

The launch packages are not installable from PyPI (PyPI's ``launch`` is an unrelated project),
so tests execute a launch file against these recorders and check what it declares.
"""

import importlib.util
import sys
import types


class Recorded:
    """Remembers the positional and keyword arguments it was built with."""

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs


class LaunchDescription(Recorded):
    @property
    def entities(self):
        return list(self.args[0]) if self.args else []


class LaunchConfiguration(Recorded):
    @property
    def name(self):
        return self.args[0]

    def perform(self, context):
        return context.launch_configurations.get(self.name, '')


def _module(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def stub_modules():
    """Map module name -> stand-in module, to install with monkeypatch.setitem(sys.modules)."""
    names = ('DeclareLaunchArgument', 'GroupAction', 'IncludeLaunchDescription', 'LogInfo',
             'OpaqueFunction', 'SetEnvironmentVariable', 'ExecuteProcess')
    actions = _module('launch.actions', **{n: type(n, (Recorded,), {}) for n in names})
    substitutions = _module(
        'launch.substitutions', LaunchConfiguration=LaunchConfiguration,
        PathJoinSubstitution=type('PathJoinSubstitution', (Recorded,), {}),
        PythonExpression=type('PythonExpression', (Recorded,), {}),
        TextSubstitution=type('TextSubstitution', (Recorded,), {}))
    conditions = _module('launch.conditions',
                         IfCondition=type('IfCondition', (Recorded,), {}),
                         UnlessCondition=type('UnlessCondition', (Recorded,), {}))
    launch = _module('launch', LaunchDescription=LaunchDescription, actions=actions,
                     substitutions=substitutions, conditions=conditions)
    ros_actions = _module('launch_ros.actions', Node=type('Node', (Recorded,), {}),
                          LifecycleNode=type('LifecycleNode', (Recorded,), {}),
                          PushRosNamespace=type('PushRosNamespace', (Recorded,), {}))
    launch_ros = _module('launch_ros', actions=ros_actions)
    return {'launch': launch, 'launch.actions': actions, 'launch.substitutions': substitutions,
            'launch.conditions': conditions, 'launch_ros': launch_ros,
            'launch_ros.actions': ros_actions}


def load_launch_description(path, monkeypatch, share_directory):
    """Execute launch file ``path`` against the stand-ins; return its LaunchDescription."""
    for name, module in stub_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    import ament_index_python.packages as packages
    monkeypatch.setattr(packages, 'get_package_share_directory', lambda pkg: share_directory)
    spec = importlib.util.spec_from_file_location('launch_under_test', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def entities_of_type(description, type_name):
    return [e for e in description.entities if type(e).__name__ == type_name]
