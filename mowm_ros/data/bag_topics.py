"""
Which topics of a recording to import: the ones named, else the common driver topic names.

Each role (colour, depth, camera_info, odometry) takes the topic given for it; when none is
given, the first of its candidates the recording holds with an accepted message type. The
camera_info is looked for first beside the chosen colour topic (image_transport's convention:
``<ns>/image_raw`` and ``<ns>/camera_info``). Every role that finds nothing is named in one
error, with the candidates tried and the topics the recording has.
"""

from mowm_ros.data.bag_import import (BagImportError, COLOR_DECODERS, DEPTH_DECODERS,
                                      INFO_TYPE, POSE_TYPES)
from mowm_ros.data.bag_reader import bag_topics, BagReadError, describe_topics

# Raw before compressed (no decoding loss), then the drivers' other layouts: realsense2_camera
# (with and without its doubled namespace), Gazebo / usb_cam style, openni / astra.
DEFAULT_CANDIDATES = {
    'image_topic': ('/camera/color/image_raw', '/camera/color/image_raw/compressed',
                    '/camera/camera/color/image_raw', '/camera/camera/color/image_raw/compressed',
                    '/camera/image_raw', '/camera/image_raw/compressed',
                    '/camera/rgb/image_raw', '/camera/rgb/image_raw/compressed',
                    '/image_raw', '/image_raw/compressed'),
    'depth_topic': ('/camera/aligned_depth_to_color/image_raw',
                    '/camera/aligned_depth_to_color/image_raw/compressedDepth',
                    '/camera/camera/aligned_depth_to_color/image_raw',
                    '/camera/depth/image_rect_raw', '/camera/depth/image_rect_raw/compressedDepth',
                    '/camera/depth/image_raw', '/camera/depth/image_raw/compressedDepth',
                    '/camera/depth_registered/image_raw', '/depth/image_raw'),
    'info_topic': ('/camera/color/camera_info', '/camera/camera/color/camera_info',
                   '/camera/camera_info', '/camera/rgb/camera_info', '/camera_info'),
    'odom_topic': ('/odom', '/odometry/filtered', '/odom/filtered', '/wheel/odometry',
                   '/rtabmap/odom', '/visual_slam/tracking/odometry'),
}
ACCEPTED_TYPES = {'image_topic': tuple(COLOR_DECODERS), 'depth_topic': tuple(DEPTH_DECODERS),
                  'info_topic': (INFO_TYPE,), 'odom_topic': tuple(POSE_TYPES)}
ROLE_NAMES = {'image_topic': ('colour image', '--image-topic'),
              'depth_topic': ('depth image', '--depth-topic'),
              'info_topic': ('camera_info', '--info-topic'),
              'odom_topic': ('odometry', '--odom-topic')}
TRANSPORT_SUFFIXES = ('/compressed', '/compressedDepth')


def sibling_camera_info(image_topic):
    """``<ns>/camera_info`` of an image topic ``<ns>/<image>[/<transport>]``."""
    base = image_topic
    for suffix in TRANSPORT_SUFFIXES:
        if base.endswith(suffix):
            base = base[:-len(suffix)]
    namespace = base.rsplit('/', 1)[0]
    return f'{namespace}/camera_info'


DEPTH_MODES = ('required', 'optional', 'none')


def resolve_topics(paths, given=None, depth='required'):
    """
    Return {role: topic} for the roles of BagImportConfig, found in the recordings.

    The roles are ``image_topic``, ``info_topic``, ``odom_topic`` and ``depth_topic`` (None
    when there is none). ``given`` maps roles to topics named by the user (None or '' = find
    one). ``depth``: 'required' (not finding one is an error), 'optional' or 'none'. A role that
    finds no topic raises BagImportError naming every such role, the candidates tried and the
    topics the recordings hold.
    """
    if depth not in DEPTH_MODES:
        raise ValueError(f'depth must be one of {DEPTH_MODES}, got {depth!r}')
    try:
        topics = bag_topics(paths)
    except BagReadError as exc:
        raise BagImportError(str(exc)) from None
    given = {role: topic for role, topic in (given or {}).items() if topic}
    roles = [role for role in ACCEPTED_TYPES if depth != 'none' or role != 'depth_topic']
    chosen, missing = {'depth_topic': None}, []
    for role in roles:
        if role in given:
            chosen[role] = given[role]      # read_bag names it when it is absent or mistyped
            continue
        candidates = DEFAULT_CANDIDATES[role]
        if role == 'info_topic' and 'image_topic' in chosen:
            first = sibling_camera_info(chosen['image_topic'])
            candidates = (first,) + tuple(c for c in candidates if c != first)
        found = [c for c in candidates if topics.get(c) in ACCEPTED_TYPES[role]]
        if found:
            chosen[role] = found[0]
        elif role != 'depth_topic' or depth == 'required':
            what, option = ROLE_NAMES[role]
            missing.append(f'no {what} topic: none of {", ".join(candidates)} with type '
                           f'{" or ".join(ACCEPTED_TYPES[role])} (name it with {option})')
    if missing:
        hint = ' (or --no-depth for a camera without depth)' if any(
            m.startswith('no depth') for m in missing) else ''
        raise BagImportError('; '.join(missing) + hint + '. The recording has: '
                             + describe_topics(topics))
    return chosen
