import json

from bag_fixtures import config, EXTRINSICS, TOPICS, write_bag
from episode_fixtures import synthetic_episode
from mowm_ros import geometry
from mowm_ros.cli import main
from mowm_ros.data.bag_import import BagImportError, extrinsics_matrix, import_bag
from mowm_ros.data.episode import load_episode
from mowm_ros.data.resize import model_intrinsics
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin


@pytest.mark.parametrize('storage', [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_episode_survives_a_rosbag2_round_trip(tmp_path, storage):
    episode = synthetic_episode(frames=8, size=(32, 24))
    write_bag(tmp_path / 'bag', episode, storage)
    back = import_bag(tmp_path / 'bag', config())
    np.testing.assert_array_equal(back.rgb, episode.rgb)
    np.testing.assert_array_equal(back.depth, episode.depth)
    np.testing.assert_array_equal(back.stamp, episode.stamp)
    np.testing.assert_allclose(back.pose, episode.pose, atol=1e-9)
    np.testing.assert_allclose(back.K, episode.K)
    assert back.extras['revisit'].shape == (8,)
    assert back.meta['counts']['images_outside_odometry'] == 0


def test_odometry_is_interpolated_at_image_stamps(tmp_path):
    episode = synthetic_episode(frames=9, size=(32, 24))
    odom_frames = [0, 3, 6, 8]
    write_bag(tmp_path / 'bag', episode, odom_frames=odom_frames)
    # Odometry gaps of 0.75 s exceed the default 0.5 s: only frames 0, 3, 6, 7 and 8 remain.
    np.testing.assert_array_equal(import_bag(tmp_path / 'bag', config()).stamp,
                                  episode.stamp[[0, 3, 6, 7, 8]])
    back = import_bag(tmp_path / 'bag', config(max_odom_gap=1.0))
    assert len(back) == 9
    camera_from_base = geometry.invert_pose(extrinsics_matrix(EXTRINSICS))
    base = episode.pose @ camera_from_base
    for i in range(9):
        before = max(f for f in odom_frames if f <= i)
        after = min(f for f in odom_frames if f >= i)
        alpha = 0.0 if after == before else (i - before) / (after - before)
        expected = geometry.interpolate_pose(base[before], base[after], alpha)
        np.testing.assert_allclose(back.extras['odom_pose'][i], expected, atol=1e-9)
        np.testing.assert_allclose(back.pose[i] @ camera_from_base, expected, atol=1e-9)
    # The synthetic camera turns at a constant rate, so slerp recovers its heading exactly.
    np.testing.assert_allclose(geometry.planar_pose(back.pose)[:, 2],
                               geometry.planar_pose(episode.pose)[:, 2], atol=1e-9)


def test_resizing_scales_intrinsics_and_keeps_the_original(tmp_path):
    episode = synthetic_episode(frames=4, size=(32, 24))
    write_bag(tmp_path / 'bag', episode, StoragePlugin.SQLITE3, encoding='bgr8')
    back = import_bag(tmp_path / 'bag', config(size=16, keep_original=True))
    assert back.rgb.shape == (4, 16, 16, 3) and back.depth.shape == (4, 16, 16)
    np.testing.assert_allclose(back.K, model_intrinsics(episode.K, 32, 24, 16))
    # bgr8 was written from RGB bytes, so the channels come back swapped.
    np.testing.assert_array_equal(back.extras['rgb_camera'], episode.rgb[..., ::-1])
    np.testing.assert_array_equal(back.extras['depth_camera'], episode.depth)
    np.testing.assert_allclose(back.extras['K_camera'], episode.K)


def test_images_outside_the_odometry_are_dropped(tmp_path):
    episode = synthetic_episode(frames=8, size=(32, 24))
    write_bag(tmp_path / 'bag', episode, odom_frames=range(2, 6))
    back = import_bag(tmp_path / 'bag', config())
    np.testing.assert_array_equal(back.stamp, episode.stamp[2:6])
    assert back.meta['counts']['images_outside_odometry'] == 4


def test_missing_topic_is_named(tmp_path):
    write_bag(tmp_path / 'bag', synthetic_episode(frames=3))
    with pytest.raises(BagImportError, match=r'lacks the topic /nope; it has: .*/odom \('):
        import_bag(tmp_path / 'bag', config(odom_topic='/nope'))
    with pytest.raises(BagImportError, match='has type sensor_msgs/msg/Image'):
        import_bag(tmp_path / 'bag', config(odom_topic='/camera/image_raw'))


def test_unsupported_encoding_is_named(tmp_path):
    write_bag(tmp_path / 'bag', synthetic_episode(frames=3), encoding='yuv422')
    with pytest.raises(BagImportError,
                       match="/camera/image_raw: unsupported colour encoding 'yuv422'"):
        import_bag(tmp_path / 'bag', config())


def test_no_overlapping_stamps_names_the_ranges(tmp_path):
    write_bag(tmp_path / 'bag', synthetic_episode(frames=3), odom_offset_ns=100 * 10**9)
    with pytest.raises(BagImportError, match=r'images 0\.250-0\.750 s, odometry '
                                             r'100\.250-100\.750 s'):
        import_bag(tmp_path / 'bag', config())


def test_from_bag_command_writes_an_episode(tmp_path, capsys):
    episode = synthetic_episode(frames=5, size=(32, 24))
    write_bag(tmp_path / 'bag', episode)
    out = tmp_path / 'episode.npz'

    def argv(odom_topic):
        return ['data', 'from-bag', str(tmp_path / 'bag'), '--out', str(out), '--size', '16',
                '--image-topic', TOPICS['image_topic'], '--depth-topic', TOPICS['depth_topic'],
                '--info-topic', TOPICS['info_topic'], '--odom-topic', odom_topic,
                '--extrinsics', *(str(v) for v in EXTRINSICS)]

    assert main(argv(TOPICS['odom_topic'])) == 0
    loaded = load_episode(out)
    assert loaded.rgb.shape == (5, 16, 16, 3)
    np.testing.assert_allclose(loaded.pose, episode.pose, atol=1e-9)
    assert main(argv('/missing')) == 2
    assert 'lacks the topic /missing' in capsys.readouterr().err


def test_from_bag_finds_the_driver_topics_and_imports_without_depth_when_there_is_none(
        tmp_path, capsys):
    episode = synthetic_episode(frames=5, size=(32, 24))
    realsense = {'image_topic': '/camera/color/image_raw', 'info_topic':
                 '/camera/color/camera_info', 'odom_topic': '/odometry/filtered'}
    write_bag(tmp_path / 'bag', episode, names=realsense,
              topics=('image_topic', 'info_topic', 'odom_topic'))
    out = tmp_path / 'episode.npz'
    assert main(['data', 'from-bag', str(tmp_path / 'bag'), '--out', str(out), '--size', '16',
                 '--extrinsics', *(str(v) for v in EXTRINSICS)]) == 0
    assert json.loads(capsys.readouterr().out)['topics'] == dict(realsense, depth_topic=None)
    loaded = load_episode(out)
    assert loaded.depth is None and len(loaded) == 5
    np.testing.assert_allclose(loaded.pose, episode.pose, atol=1e-9)
