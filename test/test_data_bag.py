from episode_fixtures import synthetic_episode
from mowm_ros import geometry, image_codec
from mowm_ros.cli import main
from mowm_ros.data.bag_import import (BagImportConfig, BagImportError, extrinsics_matrix,
                                      import_bag)
from mowm_ros.data.episode import load_episode
from mowm_ros.data.resize import model_intrinsics
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

STORE = get_typestore(Stores.ROS2_HUMBLE)
T = STORE.types
# A camera 0.2 m ahead of and 0.3 m above the base, tilted 0.1 rad down.
EXTRINSICS = (0.2, 0.0, 0.3) + tuple(geometry.quaternion_xyzw_from_matrix(
    geometry.make_pose(geometry.transforms3d.euler.euler2mat(0.0, 0.1, 0.0), np.zeros(3))[:3, :3]
    @ geometry.R_BODY_FROM_OPTICAL))
TOPICS = {'image_topic': '/camera/image_raw', 'depth_topic': '/camera/depth/image_raw',
          'info_topic': '/camera/camera_info', 'odom_topic': '/odom'}


def header(stamp_ns, frame_id):
    stamp = T['builtin_interfaces/msg/Time'](sec=int(stamp_ns // 10**9),
                                             nanosec=int(stamp_ns % 10**9))
    return T['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id)


def image_msg(stamp, data, step, height, width, encoding):
    return T['sensor_msgs/msg/Image'](
        header=header(stamp, 'camera_optical'), height=height, width=width, encoding=encoding,
        is_bigendian=0, step=step, data=np.frombuffer(data, np.uint8).copy())


def odometry_msg(stamp, pose):
    x, y, z, w = geometry.quaternion_xyzw_from_matrix(pose[:3, :3])
    point = T['geometry_msgs/msg/Point'](*(float(v) for v in pose[:3, 3]))
    quaternion = T['geometry_msgs/msg/Quaternion'](x=x, y=y, z=z, w=w)
    vector = T['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.0)
    return T['nav_msgs/msg/Odometry'](
        header=header(stamp, 'odom'), child_frame_id='base_link',
        pose=T['geometry_msgs/msg/PoseWithCovariance'](
            pose=T['geometry_msgs/msg/Pose'](position=point, orientation=quaternion),
            covariance=np.zeros(36)),
        twist=T['geometry_msgs/msg/TwistWithCovariance'](
            twist=T['geometry_msgs/msg/Twist'](linear=vector, angular=vector),
            covariance=np.zeros(36)))


def camera_info_msg(stamp, K, width, height):
    projection = np.zeros((3, 4))
    projection[:, :3] = K
    return T['sensor_msgs/msg/CameraInfo'](
        header=header(stamp, 'camera_optical'), height=height, width=width,
        distortion_model='plumb_bob', d=np.zeros(5), k=K.reshape(-1), r=np.eye(3).reshape(-1),
        p=projection.reshape(-1), binning_x=0, binning_y=0,
        roi=T['sensor_msgs/msg/RegionOfInterest'](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def write_bag(path, episode, storage=StoragePlugin.MCAP, odom_frames=None, encoding='rgb8',
              odom_offset_ns=0, depth_encoding='32FC1'):
    """Write ``episode`` as a robot would record it: images, depth, camera_info, odometry."""
    base_from_camera = extrinsics_matrix(EXTRINSICS)
    odom = episode.pose @ geometry.invert_pose(base_from_camera)
    height, width = episode.rgb.shape[1:3]
    odom_frames = range(len(episode)) if odom_frames is None else odom_frames
    with Writer(path, version=9, storage_plugin=storage) as writer:
        connections = {
            'image': writer.add_connection(TOPICS['image_topic'], 'sensor_msgs/msg/Image',
                                           typestore=STORE),
            'depth': writer.add_connection(TOPICS['depth_topic'], 'sensor_msgs/msg/Image',
                                           typestore=STORE),
            'info': writer.add_connection(TOPICS['info_topic'], 'sensor_msgs/msg/CameraInfo',
                                          typestore=STORE),
            'odom': writer.add_connection(TOPICS['odom_topic'], 'nav_msgs/msg/Odometry',
                                          typestore=STORE),
        }
        messages = []
        for i, stamp in enumerate(episode.stamp):
            stamp = int(stamp)
            data, step = image_codec.encode_rgb(episode.rgb[i]) if encoding == 'rgb8' else \
                (episode.rgb[i].tobytes(), width * 3)
            messages.append((stamp, 'image',
                             image_msg(stamp, data, step, height, width, encoding)))
            data, step = image_codec.encode_depth(episode.depth[i], depth_encoding)
            messages.append((stamp, 'depth',
                             image_msg(stamp, data, step, height, width, depth_encoding)))
            messages.append((stamp, 'info', camera_info_msg(stamp, episode.K, width, height)))
        for i in odom_frames:
            stamp = int(episode.stamp[i]) + odom_offset_ns
            messages.append((stamp, 'odom', odometry_msg(stamp, odom[i])))
        for stamp, kind, msg in sorted(messages, key=lambda item: item[0]):
            connection = connections[kind]
            writer.write(connection, stamp, STORE.serialize_cdr(msg, connection.msgtype))


def config(**overrides):
    options = dict(TOPICS, extrinsics=EXTRINSICS, size=0)
    options.update(overrides)
    return BagImportConfig(**options)


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
    with pytest.raises(BagImportError, match=r"lacks the topic /nope; it has: .*/odom \("):
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
