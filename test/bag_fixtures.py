"""
Write rosbag2 recordings the way robot drivers record them, with rosbags and no ROS.

Compressed images are written here with Pillow and ``struct`` after image_transport's wire
formats (not with mowm_ros' own code), so the importer is checked against the format itself.
"""

import io
import struct

from mowm_ros import geometry, image_codec
from mowm_ros.data.bag_import import BagImportConfig, extrinsics_matrix
from mowm_ros.data.bag_messages import (camera_info_msg, header, image_msg, odometry_msg, STORE,
                                        T, tf_message)
import numpy as np
from PIL import Image
from rosbags.rosbag2 import StoragePlugin, Writer

# A camera 0.2 m ahead of and 0.3 m above the base, tilted 0.1 rad down.
EXTRINSICS = (0.2, 0.0, 0.3) + tuple(geometry.quaternion_xyzw_from_matrix(
    geometry.make_pose(geometry.transforms3d.euler.euler2mat(0.0, 0.1, 0.0), np.zeros(3))[:3, :3]
    @ geometry.R_BODY_FROM_OPTICAL))
TOPICS = {'image_topic': '/camera/image_raw', 'depth_topic': '/camera/depth/image_raw',
          'info_topic': '/camera/camera_info', 'odom_topic': '/odom'}
# image_transport compressedDepth defaults: depth_quantization 100, depth_max 10 m.
QUANT_A = 100.0 * (100.0 + 1.0)
QUANT_B = 1.0 - QUANT_A / 10.0


def compressed_msg(stamp, data, format_, frame_id='camera_optical'):
    return T['sensor_msgs/msg/CompressedImage'](
        header=header(stamp, frame_id), format=format_,
        data=np.frombuffer(data, np.uint8).copy())


def pillow_bytes(array, codec, **options):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, codec, **options)
    return buffer.getvalue()


def compressed_depth_bytes(depth, encoding):
    """image_transport compressedDepth: 12-byte ConfigHeader, then a 16-bit PNG."""
    valid = np.isfinite(depth) & (depth > 0)
    if encoding == '16UC1':
        values = np.where(valid, np.round(depth * 1000.0), 0).astype(np.uint16)
    else:   # 32FC1: inverse depth quantised, 0 invalid
        values = np.where(valid, QUANT_A / np.where(valid, depth, 1.0) + QUANT_B, 0)
        values = np.clip(np.round(values), 0, 65535).astype(np.uint16)
    header_bytes = struct.pack('<iff', 0, QUANT_A, QUANT_B)   # 0: INV_DEPTH, PNG
    return header_bytes + pillow_bytes(values, 'PNG'), values


def colour_message(stamp, rgb, colour, encoding):
    """Return (type, message) of the colour image as ``colour``: raw, jpeg, png or garbage."""
    height, width = rgb.shape[:2]
    if colour == 'raw':
        data, step = image_codec.encode_rgb(rgb) if encoding == 'rgb8' else \
            (rgb.tobytes(), width * 3)
        return 'sensor_msgs/msg/Image', image_msg(stamp, data, step, height, width, encoding)
    if colour == 'garbage':
        return 'sensor_msgs/msg/CompressedImage', compressed_msg(
            stamp, b'not an image at all', f'{encoding}; jpeg compressed bgr8')
    pixels = rgb[:, :, 0] if encoding == 'mono8' else rgb
    options = {'quality': 95} if colour == 'jpeg' else {}
    layout = 'mono8' if encoding == 'mono8' else 'bgr8'   # as compressed_image_transport names it
    return 'sensor_msgs/msg/CompressedImage', compressed_msg(
        stamp, pillow_bytes(pixels, colour.upper(), **options),
        f'{encoding}; {colour} compressed {layout}')


def depth_message(stamp, depth, depth_format, depth_encoding):
    """Return (type, message) of the depth image as ``depth_format``: raw or compressedDepth."""
    height, width = depth.shape
    if depth_format == 'raw':
        data, step = image_codec.encode_depth(depth, depth_encoding)
        return 'sensor_msgs/msg/Image', image_msg(stamp, data, step, height, width,
                                                  depth_encoding)
    data, _ = compressed_depth_bytes(depth, depth_encoding)
    return 'sensor_msgs/msg/CompressedImage', compressed_msg(
        stamp, data, f'{depth_encoding}; compressedDepth png')


def write_bag(path, episode, storage=StoragePlugin.MCAP, odom_frames=None, encoding='rgb8',
              odom_offset_ns=0, depth_encoding='32FC1', colour='raw', depth_format='raw',
              frames=None, tf_static=None, camera_info=None, topics=None, names=None):
    """
    Write ``episode`` as a robot would record it: images, depth, camera_info, odometry.

    ``frames`` selects the episode frames recorded (all by default), ``tf_static`` adds one
    /tf_static message of (parent, child, 4x4) transforms, ``camera_info(i)`` returns the
    (K, width, height) published with frame ``i`` (the episode's by default), ``topics``
    limits the topics written (names from TOPICS' keys and 'tf'), ``names`` renames them
    ({key: topic}, e.g. a RealSense driver's names).
    """
    base_from_camera = extrinsics_matrix(EXTRINSICS)
    odom = episode.pose @ geometry.invert_pose(base_from_camera)
    height, width = episode.rgb.shape[1:3]
    frames = range(len(episode)) if frames is None else frames
    odom_frames = frames if odom_frames is None else odom_frames
    camera_info = camera_info or (lambda i: (episode.K, width, height))
    messages = []
    for i in frames:
        stamp = int(episode.stamp[i])
        messages.append((stamp, 'image_topic',
                         *colour_message(stamp, episode.rgb[i], colour, encoding)))
        messages.append((stamp, 'depth_topic', *depth_message(stamp, episode.depth[i],
                                                              depth_format, depth_encoding)))
        messages.append((stamp, 'info_topic', 'sensor_msgs/msg/CameraInfo',
                         camera_info_msg(stamp, *camera_info(i))))
    for i in odom_frames:
        stamp = int(episode.stamp[i]) + odom_offset_ns
        messages.append((stamp, 'odom_topic', 'nav_msgs/msg/Odometry',
                         odometry_msg(stamp, odom[i])))
    if tf_static is not None:
        first = int(episode.stamp[frames[0]]) - 1
        messages.append((first, 'tf', 'tf2_msgs/msg/TFMessage', tf_message(first, tf_static)))
    names = dict(TOPICS, tf='/tf_static', **(names or {}))
    wanted = set(names) if topics is None else set(topics)
    with Writer(path, version=9, storage_plugin=storage) as writer:
        connections = {}
        for stamp, kind, msgtype, msg in sorted(messages, key=lambda item: item[0]):
            if kind not in wanted:
                continue
            if kind not in connections:
                connections[kind] = writer.add_connection(names[kind], msgtype, typestore=STORE)
            writer.write(connections[kind], stamp, STORE.serialize_cdr(msg, msgtype))


def config(**overrides):
    options = dict(TOPICS, extrinsics=EXTRINSICS, size=0)
    options.update(overrides)
    return BagImportConfig(**options)
