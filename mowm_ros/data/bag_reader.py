"""
Open rosbag2 recordings (MCAP or sqlite3) with ``rosbags``, no ROS: find the bags, check topics.

``bag_paths`` expands the arguments (a bag directory, an .mcap/.db3 file, or a directory
holding several bags); ``bag_topics`` lists what they hold; ``read_bag`` checks that one bag
has the wanted topics with an accepted type and yields its messages deserialised, in
recording order.
"""

from pathlib import Path

from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.typesys import get_typestore, Stores


class BagReadError(ValueError):
    """A recording that cannot be opened or lacks what is needed; the message says which."""


BAG_FILE_SUFFIXES = ('.mcap', '.db3')


def _is_bag(path):
    return (path.is_dir() and (path / 'metadata.yaml').is_file()) or \
        (path.is_file() and path.suffix in BAG_FILE_SUFFIXES)


def bag_paths(paths):
    """Return the bags named by ``paths``: bags themselves, or directories of bags (sorted)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found = []
    for path in (Path(p) for p in paths):
        if not path.exists():
            raise BagReadError(f'{path} does not exist')
        if _is_bag(path):
            found.append(path)
            continue
        inside = sorted(p for p in path.iterdir() if _is_bag(p)) if path.is_dir() else []
        if not inside:
            raise BagReadError(f'{path} is neither a rosbag2 recording (a directory with '
                               'metadata.yaml, or an .mcap/.db3 file) nor a directory of them')
        found.extend(inside)
    if len(set(found)) != len(found):
        raise BagReadError(f'a recording is named twice: {", ".join(map(str, found))}')
    return found


def bag_topics(paths):
    """Return {topic: message type} over the bags at ``paths`` (the union of their topics)."""
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    topics = {}
    for path in bag_paths(paths):
        try:
            with AnyReader([Path(path)], default_typestore=typestore) as reader:
                topics.update({name: info.msgtype for name, info in reader.topics.items()})
        except AnyReaderError as exc:
            raise BagReadError(f'cannot read {path}: {exc}') from None
    return topics


def describe_topics(topics):
    """One line listing ``{topic: message type}``, for messages naming what a bag holds."""
    return ', '.join(f'{name} ({msgtype})' for name, msgtype in sorted(topics.items())) \
        or 'no topics'


def read_bag(path, wanted, optional=None):
    """
    Yield (topic, msgtype, message, log time ns) of the topics in ``wanted`` and ``optional``.

    ``wanted`` and ``optional`` map topic -> accepted message types. A missing wanted topic,
    or a topic of another type, raises BagReadError naming all missing topics and listing
    the topics the bag has; a missing optional topic is skipped.
    """
    optional = optional or {}
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    try:
        with AnyReader([Path(path)], default_typestore=typestore) as reader:
            topics = {name: info.msgtype for name, info in reader.topics.items()}
            missing = sorted(topic for topic in wanted if topic not in topics)
            if missing:
                raise BagReadError(f'{path} lacks the topic{"s" * (len(missing) > 1)} '
                                   f'{", ".join(missing)}; it has: {describe_topics(topics)}')
            for topic, types in {**optional, **wanted}.items():
                if topic in topics and topics[topic] not in types:
                    raise BagReadError(f'topic {topic!r} in {path} has type '
                                       f'{topics[topic]}, expected '
                                       f'{" or ".join(types)}')
            connections = [c for c in reader.connections if c.topic in wanted
                           or c.topic in optional]
            for connection, log_time, raw in reader.messages(connections=connections):
                yield (connection.topic, connection.msgtype,
                       reader.deserialize(raw, connection.msgtype), log_time)
    except AnyReaderError as exc:
        raise BagReadError(f'cannot read {path}: {exc}') from None
