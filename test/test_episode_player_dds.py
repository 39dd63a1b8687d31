"""A node of this package publishes and another receives, over real DDS."""

import subprocess
import sys

from camera_recorder import CameraRecorder
from episode_fixtures import synthetic_episode
from mowm_ros.data.episode import save_episode
from mowm_ros.extrinsics import DEFAULT_EXTRINSICS, extrinsics_matrix
from mowm_ros.nodes import conversions
from mowm_ros.nodes.episode_player import EpisodePlayer
import numpy as np
import pytest
from rclpy.parameter import Parameter
from ros_harness import wait_for

pytestmark = pytest.mark.ros


def test_player_frames_arrive_intact_over_dds(ros, tmp_path):
    episode = synthetic_episode(frames=5)
    path = tmp_path / 'ep.npz'
    save_episode(path, episode)
    recorder = CameraRecorder(ros.node('recorder'))
    ros.add(EpisodePlayer(context=ros.context, parameter_overrides=[
        Parameter('episode', value=str(path)), Parameter('rate_hz', value=20.0),
        Parameter('loop', value=True)]))

    # Best-effort QoS may drop a message; every one that arrives must be exact and consistent.
    def frames_with_odometry():
        by_stamp = recorder.by_stamp()
        return len(set(by_stamp['rgb']) & set(by_stamp['odom']))
    wait_for(lambda: frames_with_odometry() >= 3 and recorder.count() >= 1, timeout=60,
             what='3 frames with their odometry and a message on every topic')
    by_stamp = recorder.by_stamp()
    mount = extrinsics_matrix(DEFAULT_EXTRINSICS)
    checked = 0
    for stamp, image in by_stamp['rgb'].items():
        assert image.header.frame_id == 'camera_optical_frame'
        rgb = conversions.image_to_rgb(image)
        (index,) = [i for i in range(len(episode)) if np.array_equal(episode.rgb[i], rgb)]
        if stamp in by_stamp['odom']:
            _, base = conversions.odometry_to_pose(by_stamp['odom'][stamp])
            # The base pose composed with the default extrinsics (the maze camera's mount)
            # gives back the camera pose.
            np.testing.assert_allclose(base @ mount, episode.pose[index], atol=1e-6)
            checked += 1
        if stamp in by_stamp['depth']:
            np.testing.assert_allclose(
                conversions.image_to_depth(by_stamp['depth'][stamp]), episode.depth[index])
        if stamp in by_stamp['info']:
            K, size = conversions.camera_info_to_intrinsics(by_stamp['info'][stamp])
            np.testing.assert_allclose(K, episode.K)
            assert size == episode.image_size
    assert checked >= 3


def test_player_executable_in_its_own_process(ros, tmp_path):
    path = tmp_path / 'ep.npz'
    save_episode(path, synthetic_episode(frames=4))
    recorder = CameraRecorder(ros.node('recorder'), namespace='/robot')
    process = subprocess.Popen(
        [sys.executable, '-m', 'mowm_ros.nodes.episode_player', '--ros-args',
         '-r', '__ns:=/robot', '-p', f'episode:={path}', '-p', 'rate_hz:=10.0',
         '-p', 'loop:=true'],
        env=ros.subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(lambda: recorder.count('rgb') >= 3, timeout=30), 'no frames received'
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert 'playing' in output
    assert recorder.count('info') >= 1


def test_player_refuses_a_missing_episode_with_a_clear_message(ros, tmp_path):
    result = subprocess.run(
        [sys.executable, '-m', 'mowm_ros.nodes.episode_player', '--ros-args',
         '-p', f'episode:={tmp_path / "nope.npz"}'],
        env=ros.subprocess_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert 'nope.npz' in result.stderr and 'cannot start' in result.stderr
