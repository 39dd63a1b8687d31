"""
Convert a rosbag2 recording (MCAP or sqlite3) into an episode, with ``rosbags`` and no ROS.

Inputs: an image topic (sensor_msgs/Image: rgb8, bgr8, mono8, rgba8, bgra8), an optional
depth topic (32FC1 metres or 16UC1 millimetres, registered to the colour camera), the
colour camera's CameraInfo and the robot's odometry (nav_msgs/Odometry, or a PoseStamped /
PoseWithCovarianceStamped). Frames are stamped by their header (the recording time when the
header stamp is zero). The odometry is interpolated at each image stamp (linear position,
slerp rotation); images outside the odometry's span, or further than ``max_odom_gap`` from
an odometry sample on either side, are dropped. The camera pose is ``odom @ extrinsics``,
the extrinsics being base <- camera optical frame (z forward, x right, y down).
"""

from dataclasses import dataclass
from pathlib import Path

from mowm_ros import geometry, image_codec
from mowm_ros.data.episode import Episode
from mowm_ros.data.resize import resize_depth, resize_rgb
from mowm_ros.data.revisit import revisit_labels, RevisitConfig
from mowm_ros.extrinsics import DEFAULT_EXTRINSICS, extrinsics_matrix as parse_extrinsics
import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.typesys import get_typestore, Stores

GENERATOR = 'mowm_ros.data.bag_import'
GENERATOR_VERSION = '1.0'
IMAGE_TYPE = 'sensor_msgs/msg/Image'
INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
# Message type -> how to reach its geometry_msgs/Pose.
POSE_TYPES = {
    'nav_msgs/msg/Odometry': lambda msg: msg.pose.pose,
    'geometry_msgs/msg/PoseWithCovarianceStamped': lambda msg: msg.pose.pose,
    'geometry_msgs/msg/PoseStamped': lambda msg: msg.pose,
}


class BagImportError(ValueError):
    """A recording that cannot be converted; the message says what is missing or wrong."""


@dataclass
class BagImportConfig:
    image_topic: str
    info_topic: str
    odom_topic: str
    depth_topic: str = None
    extrinsics: tuple = DEFAULT_EXTRINSICS   # x y z qx qy qz qw, base <- camera optical
    size: int = 64                           # square model resolution; 0 keeps the recorded
    keep_original: bool = False              # also store rgb_camera/depth_camera/K_camera
    stride: int = 1                          # keep every stride-th image
    depth_tolerance: float = 0.02            # seconds between an image and its depth
    max_odom_gap: float = 0.5                # seconds between the odometry samples used


def extrinsics_matrix(values):
    """Return the 4x4 pose base <- camera optical; bad values raise BagImportError."""
    try:
        return parse_extrinsics(values)
    except ValueError as exc:
        raise BagImportError(str(exc)) from None


def _header_stamp(msg, log_time):
    stamp = image_codec.stamp_to_ns(msg.header.stamp)
    return stamp if stamp > 0 else int(log_time)


def _span(stamps):
    if len(stamps) == 0:
        return 'none'
    return f'{stamps[0] / 1e9:.3f}-{stamps[-1] / 1e9:.3f} s'


class _Reading:
    """Decoded messages of the topics of interest, in recording order."""

    def __init__(self, config):
        self.config = config
        self.images = []       # (stamp, rgb at model size, rgb at recorded size or None)
        self.depths = []       # (stamp, depth at recorded size)
        self.odometry = []     # (stamp, 4x4 world <- base)
        self.intrinsics = None
        self.image_count = 0
        self.image_sizes = set()   # (width, height) as recorded

    def add(self, topic, msgtype, msg, log_time):
        config = self.config
        try:
            if topic == config.image_topic:
                self.image_count += 1
                if (self.image_count - 1) % config.stride == 0:
                    rgb = image_codec.decode_rgb(msg)
                    self.image_sizes.add((rgb.shape[1], rgb.shape[0]))
                    small = resize_rgb(rgb, config.size) if config.size else rgb
                    self.images.append((_header_stamp(msg, log_time), small,
                                        rgb if config.keep_original else None))
            elif topic == config.depth_topic:
                self.depths.append((_header_stamp(msg, log_time), image_codec.decode_depth(msg)))
            elif topic == config.info_topic and self.intrinsics is None:
                self.intrinsics = image_codec.decode_intrinsics(msg)
            elif topic == config.odom_topic:
                pose = image_codec.decode_pose(POSE_TYPES[msgtype](msg))
                self.odometry.append((_header_stamp(msg, log_time), pose))
        except image_codec.CodecError as exc:
            raise BagImportError(f'{topic}: {exc}') from None


def _read(path, config):
    wanted = {config.image_topic: (IMAGE_TYPE,), config.info_topic: (INFO_TYPE,),
              config.odom_topic: tuple(POSE_TYPES)}
    if config.depth_topic:
        wanted[config.depth_topic] = (IMAGE_TYPE,)
    reading = _Reading(config)
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    try:
        with AnyReader([Path(path)], default_typestore=typestore) as reader:
            topics = reader.topics
            for topic, types in wanted.items():
                if topic not in topics:
                    available = ', '.join(f'{name} ({info.msgtype})'
                                          for name, info in sorted(topics.items()))
                    raise BagImportError(f'topic {topic!r} is not in {path}; '
                                         f'it has: {available or "no topics"}')
                if topics[topic].msgtype not in types:
                    raise BagImportError(f'topic {topic!r} has type {topics[topic].msgtype}, '
                                         f'expected {" or ".join(types)} (compressed images '
                                         'are not supported)')
            connections = [c for c in reader.connections if c.topic in wanted]
            for connection, log_time, raw in reader.messages(connections=connections):
                msg = reader.deserialize(raw, connection.msgtype)
                reading.add(connection.topic, connection.msgtype, msg, log_time)
    except AnyReaderError as exc:
        raise BagImportError(f'cannot read {path}: {exc}') from None
    return reading


def _interpolate_odometry(stamps, odom_stamps, odom_poses, max_gap_ns):
    """Return (kept mask over ``stamps``, interpolated world <- base poses of the kept)."""
    kept = np.zeros(len(stamps), bool)
    poses = []
    for i, stamp in enumerate(stamps):
        after = int(np.searchsorted(odom_stamps, stamp, side='left'))
        if after == len(odom_stamps):
            continue
        if odom_stamps[after] == stamp:
            kept[i] = True
            poses.append(odom_poses[after])
            continue
        if after == 0 or odom_stamps[after] - odom_stamps[after - 1] > max_gap_ns:
            continue
        t0, t1 = odom_stamps[after - 1], odom_stamps[after]
        kept[i] = True
        poses.append(geometry.interpolate_pose(odom_poses[after - 1], odom_poses[after],
                                               (stamp - t0) / (t1 - t0)))
    return kept, np.array(poses).reshape(-1, 4, 4)


def import_bag(path, config, revisit_config=None):
    """Read the rosbag2 at ``path`` and return it as an Episode (see the module docstring)."""
    reading = _read(path, config)
    if not reading.images:
        raise BagImportError(f'no messages on image topic {config.image_topic!r}')
    if reading.intrinsics is None:
        raise BagImportError(f'no messages on camera_info topic {config.info_topic!r}')
    if not reading.odometry:
        raise BagImportError(f'no messages on odometry topic {config.odom_topic!r}')
    K_recorded, (width, height) = reading.intrinsics
    if reading.image_sizes != {(width, height)}:
        sizes = ', '.join(f'{w}x{h}' for w, h in sorted(reading.image_sizes))
        raise BagImportError(f'camera_info is {width}x{height} but the images are {sizes}')

    order = sorted(range(len(reading.images)), key=lambda i: reading.images[i][0])
    images = [reading.images[i] for i in order]
    stamps = np.array([image[0] for image in images], np.int64)
    unique = np.concatenate([[True], np.diff(stamps) > 0])   # duplicate stamps: keep first
    counts = {'images_read': reading.image_count, 'images_kept_by_stride': len(images),
              'duplicate_stamps': int((~unique).sum())}

    depth_index = None
    if config.depth_topic:
        if not reading.depths:
            raise BagImportError(f'no messages on depth topic {config.depth_topic!r}')
        reading.depths.sort(key=lambda item: item[0])
        depth_stamps = np.array([d[0] for d in reading.depths], np.int64)
        nearest = np.clip(np.searchsorted(depth_stamps, stamps), 1, len(depth_stamps) - 1)
        nearest = np.where(np.abs(depth_stamps[nearest - 1] - stamps)
                           <= np.abs(depth_stamps[nearest] - stamps), nearest - 1, nearest) \
            if len(depth_stamps) > 1 else np.zeros(len(stamps), np.int64)
        matched = np.abs(depth_stamps[nearest] - stamps) <= config.depth_tolerance * 1e9
        counts['images_without_depth'] = int((unique & ~matched).sum())
        if not (unique & matched).any():
            raise BagImportError(f'no depth image within {config.depth_tolerance} s of an '
                                 f'image: images {_span(stamps)}, depth {_span(depth_stamps)}')
        unique &= matched
        depth_index = nearest

    reading.odometry.sort(key=lambda item: item[0])
    odom_stamps = np.array([o[0] for o in reading.odometry], np.int64)
    odom_poses = np.array([o[1] for o in reading.odometry])
    candidates = np.nonzero(unique)[0]
    kept, base_poses = _interpolate_odometry(stamps[candidates], odom_stamps, odom_poses,
                                             config.max_odom_gap * 1e9)
    if not kept.any():
        raise BagImportError(f'no image stamp lies within the odometry: images '
                             f'{_span(stamps[candidates])}, odometry {_span(odom_stamps)} '
                             f'(gaps over {config.max_odom_gap} s are not interpolated)')
    chosen = candidates[kept]
    counts['images_outside_odometry'] = int((~kept).sum())

    size = config.size or None
    out_width, out_height = (size, size) if size else (width, height)
    rgb = np.stack([images[i][1] for i in chosen])
    K = geometry.scale_intrinsics(K_recorded, (width, height), (out_width, out_height))
    pose = base_poses @ extrinsics_matrix(config.extrinsics)
    extras = {'odom_pose': base_poses}
    depth = None
    if depth_index is not None:
        recorded_depths = [reading.depths[depth_index[i]][1] for i in chosen]
        depth = np.stack([resize_depth(d, out_width, out_height)
                          for d in recorded_depths]).astype(np.float32)
        revisit_config = revisit_config or RevisitConfig()
        revisit, overlap, source = revisit_labels(
            depth, pose, K, stamps[chosen], revisit_config.min_gap_seconds * 1e9, revisit_config)
        extras.update(revisit=revisit, revisit_overlap=overlap, revisit_source=source)
    if config.keep_original:
        extras['rgb_camera'] = np.stack([images[i][2] for i in chosen])
        extras['K_camera'] = np.array(K_recorded)
        if depth is not None:
            extras['depth_camera'] = np.stack([resize_depth(d, width, height)
                                               for d in recorded_depths]).astype(np.float32)
    meta = {
        'generator': GENERATOR, 'generator_version': GENERATOR_VERSION,
        'source': str(path), 'image_topic': config.image_topic,
        'depth_topic': config.depth_topic, 'info_topic': config.info_topic,
        'odom_topic': config.odom_topic, 'extrinsics': [float(v) for v in config.extrinsics],
        'image_size': [out_width, out_height], 'camera_image_size': [width, height],
        'stride': config.stride, 'counts': counts,
    }
    if depth is not None:
        meta['revisit_fraction'] = float(extras['revisit'].mean())
    return Episode(rgb=rgb, pose=pose, K=K, stamp=stamps[chosen], depth=depth,
                   extras=extras, meta=meta)
