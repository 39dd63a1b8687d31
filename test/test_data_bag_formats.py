"""
`mowm data from-bag` on what real recordings hold.

Compressed images, compressedDepth, /tf_static extrinsics, several bags, odometry gaps,
camera_info changes, missing topics.

Every bag is written here by the test (bag_fixtures.py) with image_transport's wire formats.
"""

import json

from bag_fixtures import (compressed_depth_bytes, config, EXTRINSICS, QUANT_A, QUANT_B,
                          tf_message, TOPICS, write_bag)
from episode_fixtures import synthetic_episode
from mowm_ros import geometry
from mowm_ros.cli import main
from mowm_ros.data.bag_import import BagImportError, extrinsics_matrix, import_bag
from mowm_ros.data.episode import load_episode, read_sidecar
from mowm_ros.data.tf_tree import StaticTransforms
from mowm_ros.extrinsics import DEFAULT_EXTRINSICS
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin


def smooth_episode(frames=4, size=(48, 32)):
    """Return a synthetic episode of smooth, strongly coloured images (JPEG keeps them close)."""
    episode = synthetic_episode(frames=frames, size=size)
    width, height = size
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    for i in range(frames):
        episode.rgb[i] = np.stack([200 + 0 * x + 5 * i, 40 + y, 20 + x // 2], -1).astype(np.uint8)
    return episode


def psnr(a, b):
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(error, 1e-12))


def test_jpeg_rgb_decodes_with_true_colours(tmp_path):
    episode = smooth_episode()
    write_bag(tmp_path / 'bag', episode, colour='jpeg', encoding='rgb8')
    back = import_bag(tmp_path / 'bag', config())
    assert back.rgb.shape == episode.rgb.shape
    assert psnr(back.rgb, episode.rgb) > 35
    assert psnr(back.rgb[..., ::-1], episode.rgb) < 15     # red stays red
    np.testing.assert_array_equal(back.depth, episode.depth)


def test_png_bgr_is_lossless(tmp_path):
    episode = synthetic_episode(frames=4, size=(32, 24))
    write_bag(tmp_path / 'bag', episode, StoragePlugin.SQLITE3, colour='png', encoding='bgr8')
    np.testing.assert_array_equal(import_bag(tmp_path / 'bag', config()).rgb, episode.rgb)


def test_mono_compressed_gives_grey_rgb(tmp_path):
    episode = synthetic_episode(frames=3, size=(32, 24))
    write_bag(tmp_path / 'bag', episode, colour='png', encoding='mono8')
    back = import_bag(tmp_path / 'bag', config())
    np.testing.assert_array_equal(back.rgb, np.repeat(episode.rgb[..., :1], 3, axis=-1))


def test_compressed_depth_16uc1_is_millimetres(tmp_path):
    episode = synthetic_episode(frames=3, size=(32, 24))
    episode.depth[0, 0, :5] = np.nan                       # invalid pixels are written as 0
    write_bag(tmp_path / 'bag', episode, depth_format='compressedDepth', depth_encoding='16UC1')
    back = import_bag(tmp_path / 'bag', config())
    expected = np.round(episode.depth * 1000.0) / 1000.0
    np.testing.assert_allclose(back.depth, expected, rtol=0, atol=1e-6)
    assert np.isnan(back.depth[0, 0, :5]).all() and np.isfinite(back.depth[0, 0, 5:]).all()


def test_compressed_depth_32fc1_is_inverse_depth_quantised(tmp_path):
    episode = synthetic_episode(frames=3, size=(32, 24))
    write_bag(tmp_path / 'bag', episode, depth_format='compressedDepth', depth_encoding='32FC1')
    back = import_bag(tmp_path / 'bag', config())
    for i in range(3):
        _, quantised = compressed_depth_bytes(episode.depth[i], '32FC1')
        expected = np.float32(QUANT_A) / (quantised.astype(np.float32) - np.float32(QUANT_B))
        np.testing.assert_allclose(back.depth[i], expected, rtol=1e-6)
    # Quantisation: half a step of inverse depth, depth^2 / a / 2 metres.
    assert (np.abs(back.depth - episode.depth) <= episode.depth ** 2 / QUANT_A / 2 + 1e-5).all()


def test_unreadable_compressed_image_names_topic_and_problem(tmp_path):
    episode = synthetic_episode(frames=2, size=(32, 24))
    write_bag(tmp_path / 'bag', episode, depth_format='compressedDepth', depth_encoding='16UC1')
    with pytest.raises(BagImportError, match="/camera/depth/image_raw: format '16UC1; "
                                             "compressedDepth png' is compressedDepth, not a "
                                             'colour image'):
        import_bag(tmp_path / 'bag', config(image_topic=TOPICS['depth_topic'], depth_topic=None))
    write_bag(tmp_path / 'garbage', episode, colour='garbage')
    with pytest.raises(BagImportError, match=r'/camera/image_raw: compressed image data is not '
                                             r"a JPEG or PNG image \(starts with b'not an i'\)"):
        import_bag(tmp_path / 'garbage', config())


# A URDF-like chain: base_link -> camera_link (mount) -> camera_optical (axes), plus a laser.
MOUNT = geometry.make_pose(extrinsics_matrix(EXTRINSICS)[:3, :3]
                           @ geometry.R_BODY_FROM_OPTICAL.T, EXTRINSICS[:3])
OPTICAL = geometry.make_pose(geometry.R_BODY_FROM_OPTICAL, np.zeros(3))
TF_CHAIN = [('base_link', 'camera_link', MOUNT), ('camera_link', 'camera_optical', OPTICAL),
            ('base_link', 'laser', geometry.make_pose(np.eye(3), (0.1, 0.0, 0.2)))]


def test_extrinsics_come_from_tf_static_when_it_links_the_frames(tmp_path):
    np.testing.assert_allclose(MOUNT @ OPTICAL, extrinsics_matrix(EXTRINSICS), atol=1e-12)
    episode = synthetic_episode(frames=4, size=(32, 24))
    write_bag(tmp_path / 'bag', episode, tf_static=TF_CHAIN)
    # The argument (the maze mount) differs; /tf_static wins in the default 'auto' mode.
    back = import_bag(tmp_path / 'bag', config(extrinsics=DEFAULT_EXTRINSICS))
    np.testing.assert_allclose(back.pose, episode.pose, atol=1e-9)
    used = back.meta['extrinsics_from']
    assert (used['source'], used['chain']) == (
        '/tf_static', ['base_link', 'camera_link', 'camera_optical'])
    assert 'the extrinsics given were not used: /tf_static links base_link and ' \
        'camera_optical' in used['argument_not_used']      # said, not silently dropped
    np.testing.assert_allclose(extrinsics_matrix(back.meta['extrinsics']),
                               MOUNT @ OPTICAL, atol=1e-9)
    # Extrinsics that are no pose stop the import before the bag is read.
    with pytest.raises(BagImportError, match=r'extrinsics: .*quaternion'):
        config(extrinsics=(0, 0, 0, 0, 0, 0, 0))
    # 'argument' ignores /tf_static.
    ignored = import_bag(tmp_path / 'bag', config(extrinsics_from='argument'))
    assert ignored.meta['extrinsics_from'] == {'source': 'argument'}
    np.testing.assert_allclose(ignored.pose, episode.pose, atol=1e-9)


def test_extrinsics_fall_back_to_the_argument_and_say_why(tmp_path):
    episode = synthetic_episode(frames=4, size=(32, 24))
    write_bag(tmp_path / 'bag', episode, tf_static=TF_CHAIN[2:])   # only the laser
    back = import_bag(tmp_path / 'bag', config())
    np.testing.assert_allclose(back.pose, episode.pose, atol=1e-9)
    assert back.meta['extrinsics_from']['source'] == 'argument'
    assert "from 'base_link' to 'camera_optical'" in \
        back.meta['extrinsics_from']['tf_static_not_used']
    with pytest.raises(BagImportError, match=r'no camera extrinsics from /tf_static: .*the '
                                             r'frames are: base_link, laser'):
        import_bag(tmp_path / 'bag', config(extrinsics_from='tf'))
    write_bag(tmp_path / 'plain', episode)                          # no /tf_static at all
    default = import_bag(tmp_path / 'plain', config(extrinsics=None))
    assert default.meta['extrinsics_from'] == {
        'source': 'default', 'tf_static_not_used': '/tf_static has no transforms'}


def test_static_transform_chains_go_up_and_down_the_tree():
    transforms = StaticTransforms()
    transforms.add(tf_message(0, TF_CHAIN))
    pose, chain = transforms.chain('laser', 'camera_optical')
    assert chain == ['laser', 'base_link', 'camera_link', 'camera_optical']
    np.testing.assert_allclose(pose, geometry.invert_pose(TF_CHAIN[2][2]) @ MOUNT @ OPTICAL,
                               atol=1e-12)


def test_several_bags_and_a_directory_are_one_recording_in_time_order(tmp_path, capsys):
    episode = synthetic_episode(frames=10, size=(32, 24))
    whole = tmp_path / 'whole'
    write_bag(whole, episode)
    recordings = tmp_path / 'recordings'
    recordings.mkdir()
    write_bag(recordings / 'b_first', episode, frames=range(0, 5))
    write_bag(recordings / 'a_second', episode, StoragePlugin.SQLITE3, frames=range(5, 10))
    expected = import_bag(whole, config(max_odom_gap=1.0))
    for paths in ([recordings / 'a_second', recordings / 'b_first'], recordings):
        back = import_bag(paths, config(max_odom_gap=1.0))
        np.testing.assert_array_equal(back.stamp, episode.stamp)
        np.testing.assert_array_equal(back.rgb, expected.rgb)
        np.testing.assert_allclose(back.pose, expected.pose, atol=1e-9)
        assert [s['images'] for s in back.meta['sources']] == [5, 5]
    out = tmp_path / 'episode.npz'
    assert main(['data', 'from-bag', str(recordings / 'a_second'), str(recordings / 'b_first'),
                 '--out', str(out), '--size', '16', '--max-odom-gap', '1.0',
                 *(f'--{key.replace("_", "-")}={value}' for key, value in TOPICS.items()),
                 '--extrinsics', *(str(v) for v in EXTRINSICS)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary['bags'] == 2 and summary['frames'] == 10
    assert summary['extrinsics_from']['source'] == 'argument'
    assert len(load_episode(out)) == 10


def test_odometry_gap_is_reported_not_fatal(tmp_path, capsys):
    episode = synthetic_episode(frames=10, size=(32, 24))
    # Frames are 0.25 s apart: without odometry at frames 3-5 the gap is 1 s (2 to 6).
    write_bag(tmp_path / 'bag', episode, odom_frames=[0, 1, 2, 6, 7, 8, 9])
    back = import_bag(tmp_path / 'bag', config())
    np.testing.assert_array_equal(back.stamp, episode.stamp[[0, 1, 2, 6, 7, 8, 9]])
    assert back.meta['odometry_gaps'] == [
        {'start_s': 0.75, 'end_s': 1.75, 'seconds': 1.0, 'images': 3}]
    assert back.meta['counts']['odometry_gaps'] == 1
    out = tmp_path / 'episode.npz'
    assert main(['data', 'from-bag', str(tmp_path / 'bag'), '--out', str(out),
                 *(f'--{key.replace("_", "-")}={value}' for key, value in TOPICS.items())]) == 0
    assert json.loads(capsys.readouterr().out)['odometry_gaps'][0]['images'] == 3
    assert read_sidecar(out)['odometry_gaps'][0]['seconds'] == 1.0


def test_camera_info_change_is_reported_and_the_longest_camera_kept(tmp_path):
    episode = synthetic_episode(frames=8, size=(32, 24))
    other = episode.K.copy()
    other[0, 0] *= 1.5
    write_bag(tmp_path / 'bag', episode,
              camera_info=lambda i: (episode.K if i < 6 else other, 32, 24))
    back = import_bag(tmp_path / 'bag', config())
    np.testing.assert_array_equal(back.stamp, episode.stamp[:6])
    np.testing.assert_allclose(back.K, episode.K)
    assert back.meta['counts']['images_other_camera_info'] == 2
    [change] = back.meta['camera_info_changes']
    assert change['at_s'] == 1.75
    assert change['to']['fx_fy_cx_cy'][0] == pytest.approx(other[0, 0], abs=1e-3)
    assert change['from']['size'] == change['to']['size'] == [32, 24]


def test_missing_topics_are_all_named_beside_what_the_bag_has(tmp_path, capsys):
    write_bag(tmp_path / 'bag', synthetic_episode(frames=3),
              topics=('image_topic', 'info_topic'))
    with pytest.raises(BagImportError) as error:
        import_bag(tmp_path / 'bag', config())
    message = str(error.value)
    assert 'lacks the topics /camera/depth/image_raw, /odom; it has: ' in message
    assert '/camera/camera_info (sensor_msgs/msg/CameraInfo), /camera/image_raw ' \
        '(sensor_msgs/msg/Image)' in message
    assert main(['data', 'from-bag', str(tmp_path / 'bag'), '--out', str(tmp_path / 'e.npz'),
                 *(f'--{key.replace("_", "-")}={value}' for key, value in TOPICS.items())]) == 2
    assert 'lacks the topics /camera/depth/image_raw, /odom' in capsys.readouterr().err
    assert not (tmp_path / 'e.npz').exists()


def test_a_path_that_is_no_recording_is_named(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagImportError, match='empty is neither a rosbag2 recording'):
        import_bag(tmp_path / 'empty', config())


def test_camera_info_of_another_size_than_the_images_is_named(tmp_path):
    episode = synthetic_episode(frames=3, size=(32, 24))
    write_bag(tmp_path / 'bag', episode, camera_info=lambda i: (episode.K, 64, 48))
    with pytest.raises(BagImportError, match='camera_info is 64x48 but the images are 32x24'):
        import_bag(tmp_path / 'bag', config())
