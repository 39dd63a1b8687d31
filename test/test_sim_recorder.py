"""``mowm data record-sim``: the simulated robot's topics in a rosbag2 recording, any camera."""

import json

from mowm_ros import geometry
from mowm_ros.cli import main
from mowm_ros.data.bag_import import BagImportConfig, import_bag
from mowm_ros.data.maze_robot import MazeRobot
from mowm_ros.data.sim_recorder import TOPICS
import numpy as np


def test_a_recording_imports_with_the_robots_poses_and_the_chosen_camera(tmp_path, capsys):
    bag = tmp_path / 'bag'
    assert main(['data', 'record-sim', '--out', str(bag), '--maze-size', '13', '--seed', '3',
                 '--steps', '6', '--width', '96', '--height', '72', '--fovy', '70',
                 '--no-progress']) == 0
    assert json.loads(capsys.readouterr().out)['frames'] == 7
    episode = import_bag(bag, BagImportConfig(
        image_topic=TOPICS['rgb'], depth_topic=TOPICS['depth'], info_topic=TOPICS['info'],
        odom_topic=TOPICS['odom'], size=0))
    assert episode.rgb.shape == (7, 72, 96, 3) and episode.depth.shape == (7, 72, 96)
    np.testing.assert_allclose(episode.K, geometry.intrinsics_from_fovy(70.0, 96, 72))
    assert episode.meta['extrinsics_from']['source'] == '/tf_static'
    # The camera poses are the simulated robot's along its exploration route.
    robot = MazeRobot(13, 3, image_size=16, depth=False)
    try:
        poses = [robot.frame.pose] + [robot.step(robot.explore_action()).pose
                                      for _ in range(6)]
    finally:
        robot.close()
    np.testing.assert_allclose(episode.pose, np.stack(poses), atol=1e-9)
    assert np.nanmax(episode.depth) > 0.5 and len({frame.tobytes() for frame in episode.rgb}) > 1
    # A recording is never overwritten.
    assert main(['data', 'record-sim', '--out', str(bag), '--steps', '2', '--no-progress']) == 2
    assert 'exists; choose a new path' in capsys.readouterr().err
    # A lens MuJoCo cannot render is refused before anything is written.
    lens = tmp_path / 'lens'
    assert main(['data', 'record-sim', '--out', str(lens), '--fovy', '200', '--steps', '2',
                 '--no-progress']) == 2
    assert 'fovy must be 1-170 degrees, got 200' in capsys.readouterr().err
    assert not lens.exists(), 'a refused recording left files behind'
