"""
Move the topics config/mowm.rviz and config/nav2_params.yaml name into a robot's namespace.

Both files name absolute topics (``/world_model/memory/cloud``); a robot launched with
``namespace:=robot1`` publishes ``/robot1/world_model/memory/cloud``. The launch file writes
rewritten copies; ``rviz_topics`` and ``nav2_topics`` list what a file names (tests check each
exists in the running graph). ``/diagnostics`` and ``/tf`` stay global, as ROS tools expect.
"""

import os

import yaml

GLOBAL_TOPICS = ('/diagnostics', '/tf', '/tf_static', '/clock', '/rosout')
NAV2_TOPIC_KEYS = ('map_topic', 'topic')


def namespaced_topic(topic, namespace):
    """Return ``topic`` inside ``namespace`` ('/x' or 'x' -> '/ns/x'); global topics stay."""
    namespace = namespace.strip('/')
    if not namespace or topic in GLOBAL_TOPICS:
        return topic
    if topic.startswith(f'/{namespace}/'):
        return topic
    return f'/{namespace}/{topic.lstrip("/")}'


def _rviz_topic_holders(node):
    """Yield the ``Topic`` mappings of an rviz config, wherever displays nest them."""
    if isinstance(node, dict):
        topic = node.get('Topic')
        if isinstance(topic, dict) and isinstance(topic.get('Value'), str):
            yield topic
        for value in node.values():
            yield from _rviz_topic_holders(value)
    elif isinstance(node, list):
        for value in node:
            yield from _rviz_topic_holders(value)


def _nav2_topic_holders(node):
    """Yield (mapping, key) of every topic a Nav2 parameter file names."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in NAV2_TOPIC_KEYS and isinstance(value, str):
                yield node, key
            else:
                yield from _nav2_topic_holders(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nav2_topic_holders(value)


def rviz_topics(text):
    return [holder['Value'] for holder in _rviz_topic_holders(yaml.safe_load(text))]


def nav2_topics(text):
    return [mapping[key] for mapping, key in _nav2_topic_holders(yaml.safe_load(text))]


def namespaced_rviz(text, namespace):
    """Return the rviz config ``text`` with its topics in ``namespace``."""
    config = yaml.safe_load(text)
    for holder in _rviz_topic_holders(config):
        holder['Value'] = namespaced_topic(holder['Value'], namespace)
    return yaml.safe_dump(config, sort_keys=False)


def namespaced_nav2_params(text, namespace):
    """Return the Nav2 parameter file ``text`` with the topics it names in ``namespace``."""
    config = yaml.safe_load(text)
    for mapping, key in _nav2_topic_holders(config):
        mapping[key] = namespaced_topic(mapping[key], namespace)
    return yaml.safe_dump(config, sort_keys=False)


def write_namespaced_configs(config_dir, namespace, out_dir):
    """Write mowm.rviz and nav2_params.yaml of ``config_dir`` for ``namespace``; return paths."""
    paths = []
    for name, rewrite in (('mowm.rviz', namespaced_rviz),
                          ('nav2_params.yaml', namespaced_nav2_params)):
        with open(os.path.join(config_dir, name)) as source:
            text = rewrite(source.read(), namespace)
        path = os.path.join(out_dir, name)
        with open(path, 'w') as target:
            target.write(text)
        paths.append(path)
    return paths
