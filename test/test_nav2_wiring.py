"""The Nav2 wiring: the bridge says what it needs without Nav2; the example params hold."""

from pathlib import Path
import subprocess
import sys

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_bridge_without_nav2_says_what_it_needs():
    pytest.importorskip('rclpy')
    from mowm_ros.nodes import nav2_bridge
    if nav2_bridge.nav2_available():
        pytest.skip('Nav2 is installed here')
    result = subprocess.run([sys.executable, '-m', 'mowm_ros.nodes.nav2_bridge'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert 'needs Nav2' in result.stderr and 'nav2_simple_commander' in result.stderr


def test_example_nav2_params_use_the_topics_the_world_model_publishes():
    params = yaml.safe_load((REPO_ROOT / 'config' / 'nav2_params.yaml').read_text())
    layers = params['global_costmap']['global_costmap']['ros__parameters']
    assert layers['memory_layer']['map_topic'] == '/world_model/memory/costmap'
    assert layers['memory_layer']['map_subscribe_transient_local'] is True
    assert layers['obstacle_layer']['memory_cloud']['topic'] == '/world_model/memory/cloud'
    assert layers['obstacle_layer']['memory_cloud']['data_type'] == 'PointCloud2'
