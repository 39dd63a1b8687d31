"""The package builds and installs as a ROS 2 ament_python package, and its launch files hold."""

import configparser
import importlib.metadata
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys

from launch_stubs import entities_of_type, load_launch_description
from lint_paths import REPO_ROOT
import pytest

PACKAGE_FILES = ('package.xml', 'setup.py', 'setup.cfg', 'resource', 'mowm_ros', 'launch',
                 'config')


def console_scripts():
    """Return the executable names declared in setup.py's entry points."""
    source = (REPO_ROOT / 'setup.py').read_text()
    start = source.index("'console_scripts': [")
    block = source[start:source.index(']', start)]
    return sorted(line.split('=')[0].strip().strip("'")
                  for line in block.splitlines()[1:] if '=' in line)


@pytest.fixture(scope='module')
def colcon_install(tmp_path_factory):
    workspace = tmp_path_factory.mktemp('colcon_ws')
    source = workspace / 'src' / 'mowm_ros'
    source.mkdir(parents=True)
    for name in PACKAGE_FILES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name,
                            ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copy2(path, source / name)
    colcon = Path(sys.executable).parent / 'colcon'
    result = subprocess.run([str(colcon), 'build', '--base-paths', 'src'], cwd=workspace,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return workspace / 'install' / 'mowm_ros'


@pytest.mark.slow
def test_colcon_installs_executables_launch_and_config(colcon_install):
    lib = colcon_install / 'lib' / 'mowm_ros'
    share = colcon_install / 'share' / 'mowm_ros'
    for executable in console_scripts():
        assert os.access(lib / executable, os.X_OK), f'{executable} missing from {lib}'
    for launch_file in (REPO_ROOT / 'launch').glob('*.launch.py'):
        assert (share / 'launch' / launch_file.name).is_file()
    for config_file in (REPO_ROOT / 'config').iterdir():
        assert (share / 'config' / config_file.name).is_file()
    assert (share / 'package.xml').is_file()
    marker = colcon_install / 'share' / 'ament_index' / 'resource_index' / 'packages'
    assert (marker / 'mowm_ros').is_file()


@pytest.mark.slow
def test_installed_package_is_the_one_imported(colcon_install):
    site = next(colcon_install.glob('lib/python3.*/site-packages'))
    env = dict(os.environ, PYTHONPATH=str(site))
    result = subprocess.run([sys.executable, '-c', 'import mowm_ros; print(mowm_ros.__file__)'],
                            env=env, capture_output=True, text=True, timeout=60, cwd='/')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(site))


def test_setup_cfg_installs_scripts_where_ros2_run_looks():
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / 'setup.cfg')
    assert config['develop']['script_dir'] == '$base/lib/mowm_ros'
    assert config['install']['install_scripts'] == '$base/lib/mowm_ros'


def test_package_xml_declares_the_ros_dependencies():
    xml = (REPO_ROOT / 'package.xml').read_text()
    assert '<package format="3">' in xml
    for dependency in ('rclpy', 'sensor_msgs', 'nav_msgs', 'geometry_msgs', 'std_srvs',
                       'visualization_msgs', 'diagnostic_msgs', 'launch', 'launch_ros',
                       'lifecycle_msgs', 'rosgraph_msgs'):
        assert f'<exec_depend>{dependency}</exec_depend>' in xml
    # PyPI's `launch` is an unrelated project: it must never be a pip requirement.
    names = {re.split(r'[ ;<>=!\[]', r, maxsplit=1)[0].lower()
             for r in importlib.metadata.requires('mowm_ros')}
    assert 'ros-rclpy' in names and not names & {'launch', 'launch-ros', 'launch_ros'}


def test_episode_player_launch_file_declares_the_node(monkeypatch):
    share = str(REPO_ROOT)
    description = load_launch_description(
        REPO_ROOT / 'launch' / 'episode_player.launch.py', monkeypatch, share)
    arguments = {a.args[0] for a in entities_of_type(description, 'DeclareLaunchArgument')}
    assert {'params_file', 'episode', 'namespace'} <= arguments
    (node,) = entities_of_type(description, 'Node')
    assert node.kwargs['package'] == 'mowm_ros'
    assert node.kwargs['executable'] in console_scripts()
    params_default = next(a for a in entities_of_type(description, 'DeclareLaunchArgument')
                          if a.args[0] == 'params_file').kwargs['default_value']
    assert Path(params_default).is_file()


def test_launch_file_with_real_launch_ros():
    pytest.importorskip('launch_ros')
    import importlib.util
    path = REPO_ROOT / 'launch' / 'episode_player.launch.py'
    spec = importlib.util.spec_from_file_location('real_launch', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.generate_launch_description().entities
