"""
Convert rosbag2 recordings (MCAP or sqlite3, one or several) into an episode, without ROS.

Inputs: a colour topic (sensor_msgs/Image rgb8, bgr8, mono8, rgba8, bgra8, or
sensor_msgs/CompressedImage JPEG/PNG), an optional depth topic registered to the colour camera
(Image 32FC1 metres or 16UC1 millimetres, or CompressedImage compressedDepth), the colour
camera's CameraInfo and the robot's odometry (nav_msgs/Odometry, or a PoseStamped /
PoseWithCovarianceStamped). Several bags (or a directory of bags) are read as one recording in
time order. Frames are stamped by their header (the recording time when the header stamp is
zero). The odometry is interpolated at each image stamp (linear position, slerp rotation);
images outside the odometry's span, or in a gap between odometry samples longer than
``max_odom_gap``, are dropped and the gaps reported. When the camera_info changes, the frames
of the camera seen longest are kept and the changes reported. The camera pose is
``odom @ extrinsics``, the extrinsics being base <- camera optical frame (z forward, x right,
y down): composed from /tf_static when it links the base and camera frames, else given.
Frames are centre-cropped to a square and resized to the model size, as the world model does;
``stride`` and ``min_period`` thin a fast camera before anything is decoded or kept.
"""

from dataclasses import dataclass
import logging

from mowm_ros import compressed_codec, geometry, image_codec
from mowm_ros.data import bag_report
from mowm_ros.data.bag_reader import bag_paths, BagReadError, read_bag
from mowm_ros.data.episode import Episode
from mowm_ros.data.resize import model_intrinsics, resize_depth, to_model_depth, to_model_frame
from mowm_ros.data.revisit import revisit_labels, RevisitConfig
from mowm_ros.data.tf_tree import StaticTransforms, TransformError
from mowm_ros.extrinsics import DEFAULT_EXTRINSICS, extrinsics_matrix as parse_extrinsics
import numpy as np

log = logging.getLogger(__name__)
GENERATOR = 'mowm_ros.data.bag_import'
GENERATOR_VERSION = '1.1'
IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_TYPE = 'sensor_msgs/msg/CompressedImage'
INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
TF_TYPE = 'tf2_msgs/msg/TFMessage'
COLOR_DECODERS = {IMAGE_TYPE: image_codec.decode_rgb,
                  COMPRESSED_TYPE: compressed_codec.decode_compressed_rgb}
DEPTH_DECODERS = {IMAGE_TYPE: image_codec.decode_depth,
                  COMPRESSED_TYPE: compressed_codec.decode_compressed_depth}
# Message type -> how to reach its geometry_msgs/Pose.
POSE_TYPES = {
    'nav_msgs/msg/Odometry': lambda msg: msg.pose.pose,
    'geometry_msgs/msg/PoseWithCovarianceStamped': lambda msg: msg.pose.pose,
    'geometry_msgs/msg/PoseStamped': lambda msg: msg.pose,
}
EXTRINSICS_FROM = ('auto', 'tf', 'argument')


class BagImportError(ValueError):
    """A recording that cannot be converted; the message says what is missing or wrong."""


@dataclass
class BagImportConfig:
    image_topic: str
    info_topic: str
    odom_topic: str
    depth_topic: str = None
    extrinsics: tuple = None        # x y z qx qy qz qw, base <- camera optical; None: default
    extrinsics_from: str = 'auto'   # auto: /tf_static if it links the frames, else extrinsics
    tf_topic: str = '/tf_static'
    base_frame: str = ''            # '' = the odometry's child_frame_id, else base_link
    camera_frame: str = ''          # '' = the colour images' header.frame_id
    size: int = 64                  # square model resolution (centre crop); 0 keeps the recorded
    keep_original: bool = False     # also store rgb_camera/depth_camera/K_camera
    stride: int = 1                 # keep every stride-th image
    min_period: float = 0.0         # seconds: skip images sooner than this after the last kept
    depth_tolerance: float = 0.02   # seconds between an image and its depth
    max_odom_gap: float = 0.5       # seconds between the odometry samples used

    def __post_init__(self):
        if self.extrinsics_from not in EXTRINSICS_FROM:
            raise BagImportError(f'extrinsics_from must be one of {EXTRINSICS_FROM}, got '
                                 f'{self.extrinsics_from!r}')
        if self.stride < 1 or self.size < 0 or not self.min_period >= 0:
            raise BagImportError(f'stride must be >= 1, size >= 0 and min_period >= 0, got '
                                 f'{self.stride}, {self.size}, {self.min_period}')
        if self.extrinsics is not None:
            extrinsics_matrix(self.extrinsics)   # bad values stop here, before any reading


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
    """Decoded messages of the topics of interest, over all bags."""

    def __init__(self, config):
        self.config = config
        self.images = []       # (stamp, model-size rgb, recorded rgb or None, (width, height))
        self.depths = []       # (stamp, depth at model size, at recorded size when kept)
        self.odometry = []     # (stamp, 4x4 world <- base)
        self.cameras = []      # (stamp, K, (width, height)) whenever the camera_info changes
        self.transforms = StaticTransforms()
        self.image_count = 0
        self.last_kept = None  # stamp of the newest image kept under min_period
        self.odom_child_frame = ''
        self.image_frame = ''

    def add(self, topic, msgtype, msg, log_time):
        config = self.config
        try:
            if topic == config.image_topic:
                self.image_count += 1
                if (self.image_count - 1) % config.stride == 0 and self._due(msg, log_time):
                    self._add_image(COLOR_DECODERS[msgtype](msg), msg, log_time)
            elif topic == config.depth_topic:
                depth = DEPTH_DECODERS[msgtype](msg)
                self.depths.append((_header_stamp(msg, log_time),
                                    to_model_depth(depth, config.size) if config.size else depth,
                                    depth if config.keep_original else None))
            elif topic == config.info_topic:
                K, size = image_codec.decode_intrinsics(msg)
                if not self.cameras or self.cameras[-1][2] != size or \
                        not np.array_equal(self.cameras[-1][1], K):
                    self.cameras.append((_header_stamp(msg, log_time), K, size))
            elif topic == config.odom_topic:
                pose = image_codec.decode_pose(POSE_TYPES[msgtype](msg))
                self.odometry.append((_header_stamp(msg, log_time), pose))
                self.odom_child_frame = self.odom_child_frame or \
                    getattr(msg, 'child_frame_id', '')
            elif topic == config.tf_topic:
                self.transforms.add(msg)
        except (image_codec.CodecError, TransformError) as exc:
            raise BagImportError(f'{topic}: {exc}') from None

    def _due(self, msg, log_time):
        """Whether an image is at least min_period after the last one kept (then keep it)."""
        stamp = _header_stamp(msg, log_time)
        if self.last_kept is not None and \
                0 <= stamp - self.last_kept < self.config.min_period * 1e9:
            return False
        self.last_kept = stamp
        return True

    def _add_image(self, rgb, msg, log_time):
        config = self.config
        self.image_frame = self.image_frame or msg.header.frame_id
        small = to_model_frame(rgb, config.size) if config.size else rgb
        self.images.append((_header_stamp(msg, log_time), small,
                            rgb if config.keep_original else None, (rgb.shape[1], rgb.shape[0])))


def _read(paths, config):
    wanted = {config.image_topic: tuple(COLOR_DECODERS), config.info_topic: (INFO_TYPE,),
              config.odom_topic: tuple(POSE_TYPES)}
    if config.depth_topic:
        wanted[config.depth_topic] = tuple(DEPTH_DECODERS)
    optional = {config.tf_topic: (TF_TYPE,)} if config.extrinsics_from != 'argument' else {}
    reading = _Reading(config)
    sources = []
    try:
        for path in bag_paths(paths):
            before = len(reading.images)
            for topic, msgtype, msg, log_time in read_bag(path, wanted, optional):
                reading.add(topic, msgtype, msg, log_time)
            stamps = sorted(image[0] for image in reading.images[before:])
            sources.append({'path': str(path), 'images': len(stamps), 'span': _span(stamps)})
    except BagReadError as exc:
        raise BagImportError(str(exc)) from None
    return reading, sources


def _extrinsics(config, reading):
    """(4x4 base <- camera optical, meta describing where it came from)."""
    base = config.base_frame or reading.odom_child_frame or 'base_link'
    camera = config.camera_frame or reading.image_frame
    reason = None
    if config.extrinsics_from != 'argument':
        if not reading.transforms.edges:
            reason = f'{config.tf_topic} has no transforms'
        elif not camera:
            reason = 'the images name no frame_id (pass camera_frame)'
        else:
            try:
                pose, chain = reading.transforms.chain(base, camera)
                meta = {'source': config.tf_topic, 'chain': chain}
                if config.extrinsics is not None:
                    meta['argument_not_used'] = (
                        f'the extrinsics given were not used: {config.tf_topic} links '
                        f'{base} and {camera} (extrinsics_from argument uses them)')
                    log.warning(meta['argument_not_used'])
                return pose, meta
            except TransformError as exc:
                reason = f'{config.tf_topic}: {exc}'
        if config.extrinsics_from == 'tf':
            raise BagImportError(f'no camera extrinsics from {config.tf_topic}: {reason}')
    values = DEFAULT_EXTRINSICS if config.extrinsics is None else config.extrinsics
    meta = {'source': 'default' if config.extrinsics is None else 'argument'}
    if reason:
        meta['tf_static_not_used'] = reason
    return extrinsics_matrix(values), meta


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


def _nearest_depth(depth_stamps, stamps):
    """Index of the depth image nearest in time to each of ``stamps``."""
    if len(depth_stamps) == 1:
        return np.zeros(len(stamps), np.int64)
    nearest = np.clip(np.searchsorted(depth_stamps, stamps), 1, len(depth_stamps) - 1)
    return np.where(np.abs(depth_stamps[nearest - 1] - stamps)
                    <= np.abs(depth_stamps[nearest] - stamps), nearest - 1, nearest)


def _camera_in_force(reading, stamps, counts, report):
    """(K, (width, height)) of the camera seen longest; a mask of the images taken with it."""
    cameras = bag_report.distinct_cameras(reading.cameras)
    which = bag_report.camera_of_images(cameras, stamps)
    chosen = int(np.argmax(np.bincount(which, minlength=len(cameras))))
    changes = bag_report.camera_info_changes(cameras)
    report['camera_info_changes'] = bag_report.listed(changes)
    counts['camera_info_changes'] = len(changes)
    counts['images_other_camera_info'] = int((which != chosen).sum())
    return cameras[chosen][1], cameras[chosen][2], which == chosen


def import_bag(paths, config, revisit_config=None):
    """Read the rosbag2 recordings at ``paths`` as one Episode (see the module docstring)."""
    reading, sources = _read(paths, config)
    for what, items, topic in (('image', reading.images, config.image_topic),
                               ('camera_info', reading.cameras, config.info_topic),
                               ('odometry', reading.odometry, config.odom_topic)):
        if not items:
            raise BagImportError(f'no messages on {what} topic {topic!r}')

    order = sorted(range(len(reading.images)), key=lambda i: reading.images[i][0])
    images = [reading.images[i] for i in order]
    stamps = np.array([image[0] for image in images], np.int64)
    unique = np.concatenate([[True], np.diff(stamps) > 0])   # duplicate stamps: keep first
    counts = {'images_read': reading.image_count, 'images_kept_by_stride': len(images),
              'duplicate_stamps': int((~unique).sum())}
    report = {}
    K_recorded, (width, height), same_camera = _camera_in_force(reading, stamps, counts, report)
    # Images of another size than their camera_info (e.g. sent before a new camera_info) are
    # dropped and counted; when none matches, the camera_info is wrong for the whole topic.
    same_size = np.array([image[3] == (width, height) for image in images])
    if not (same_camera & same_size).any():
        sizes = {images[i][3] for i in np.nonzero(same_camera)[0]}
        shown = ', '.join(f'{w}x{h}' for w, h in sorted(sizes))
        raise BagImportError(f'camera_info is {width}x{height} but the images are {shown}')
    counts['images_other_size'] = int((same_camera & ~same_size).sum())
    unique &= same_camera & same_size

    depth_index = None
    if config.depth_topic:
        if not reading.depths:
            raise BagImportError(f'no messages on depth topic {config.depth_topic!r}')
        reading.depths.sort(key=lambda item: item[0])
        depth_stamps = np.array([d[0] for d in reading.depths], np.int64)
        depth_index = _nearest_depth(depth_stamps, stamps)
        matched = np.abs(depth_stamps[depth_index] - stamps) <= config.depth_tolerance * 1e9
        counts['images_without_depth'] = int((unique & ~matched).sum())
        if not (unique & matched).any():
            raise BagImportError(f'no depth image within {config.depth_tolerance} s of an '
                                 f'image: images {_span(stamps)}, depth {_span(depth_stamps)}')
        unique &= matched

    reading.odometry.sort(key=lambda item: item[0])
    odom_stamps = np.array([o[0] for o in reading.odometry], np.int64)
    odom_poses = np.array([o[1] for o in reading.odometry])
    candidates = np.nonzero(unique)[0]
    gaps = bag_report.odometry_gaps(odom_stamps, config.max_odom_gap * 1e9, stamps[candidates])
    report['odometry_gaps'] = bag_report.listed(gaps)
    counts['odometry_gaps'] = len(gaps)
    kept, base_poses = _interpolate_odometry(stamps[candidates], odom_stamps, odom_poses,
                                             config.max_odom_gap * 1e9)
    if not kept.any():
        raise BagImportError(f'no image stamp lies within the odometry: images '
                             f'{_span(stamps[candidates])}, odometry {_span(odom_stamps)} '
                             f'(gaps over {config.max_odom_gap} s are not interpolated)')
    chosen = candidates[kept]
    counts['images_outside_odometry'] = int((~kept).sum())

    base_from_camera, extrinsics_meta = _extrinsics(config, reading)
    out_width, out_height = (config.size, config.size) if config.size else (width, height)
    rgb = np.stack([images[i][1] for i in chosen])
    K = model_intrinsics(K_recorded, width, height, config.size) if config.size \
        else np.array(K_recorded)
    pose = base_poses @ base_from_camera
    extras = {'odom_pose': base_poses}
    depth = None
    if depth_index is not None:
        depth = np.stack([reading.depths[depth_index[i]][1] for i in chosen]).astype(np.float32)
        revisit_config = revisit_config or RevisitConfig()
        revisit, overlap, source = revisit_labels(
            depth, pose, K, stamps[chosen], revisit_config.min_gap_seconds * 1e9, revisit_config)
        extras.update(revisit=revisit, revisit_overlap=overlap, revisit_source=source)
    if config.keep_original:
        extras['rgb_camera'] = np.stack([images[i][2] for i in chosen])
        extras['K_camera'] = np.array(K_recorded)
        if depth is not None:
            extras['depth_camera'] = np.stack([
                resize_depth(reading.depths[depth_index[i]][2], width, height)
                for i in chosen]).astype(np.float32)
    translation = base_from_camera[:3, 3]
    quaternion = geometry.quaternion_xyzw_from_matrix(base_from_camera[:3, :3])
    meta = {
        'generator': GENERATOR, 'generator_version': GENERATOR_VERSION,
        'source': sources[0]['path'] if len(sources) == 1 else [s['path'] for s in sources],
        'sources': sources, 'image_topic': config.image_topic,
        'depth_topic': config.depth_topic, 'info_topic': config.info_topic,
        'odom_topic': config.odom_topic,
        'extrinsics': [float(v) for v in (*translation, *quaternion)],
        'extrinsics_from': extrinsics_meta, 'image_size': [out_width, out_height],
        'camera_image_size': [width, height], 'stride': config.stride,
        'min_period': config.min_period, 'counts': counts,
        **report,
    }
    if depth is not None:
        meta['revisit_fraction'] = float(extras['revisit'].mean())
    return Episode(rgb=rgb, pose=pose, K=K, stamp=stamps[chosen], depth=depth,
                   extras=extras, meta=meta)
