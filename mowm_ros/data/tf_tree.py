"""
Transforms of /tf_static and /tf and the chain between two frames, without ROS.

The messages are tf2_msgs/TFMessage.

Each TransformStamped is the pose of ``child_frame_id`` in ``header.frame_id``. ``chain``
finds the path between two frames through the tree (up towards a common ancestor and down
again) and composes it, so the camera extrinsics base <- camera optical come out of a URDF's
``base_link -> camera_link -> camera_color_optical_frame`` as the robot publishes them.
``StaticTransforms`` holds one pose per edge (a recording's /tf_static); ``TransformHistory``
adds the recent /tf poses of each edge by stamp, for the tree as it was at a given time.
"""

from bisect import insort
from collections import deque
import math

from mowm_ros import geometry
import numpy as np


class TransformError(ValueError):
    """A transform that cannot be decoded or a chain that does not exist; says which."""


def transform_matrix(transform, name='transform'):
    """4x4 pose from a geometry_msgs/Transform (translation, rotation xyzw)."""
    t, q = transform.translation, transform.rotation
    values = (t.x, t.y, t.z, q.x, q.y, q.z, q.w)
    if not all(math.isfinite(v) for v in values):
        raise TransformError(f'{name} has NaN or infinite values: {values}')
    try:
        rotation = geometry.matrix_from_quaternion_xyzw(values[3:])
    except geometry.GeometryError as exc:
        raise TransformError(f'{name}: {exc}') from None
    return geometry.make_pose(rotation, values[:3])


def _decoded(message):
    """Yield (parent, child, stamp ns, 4x4 parent <- child) of a tf2_msgs/TFMessage."""
    for stamped in message.transforms:
        parent = stamped.header.frame_id.lstrip('/')
        child = stamped.child_frame_id.lstrip('/')
        stamp = stamped.header.stamp
        yield parent, child, stamp.sec * 1_000_000_000 + stamp.nanosec, transform_matrix(
            stamped.transform, f'transform {parent} -> {child}')


class StaticTransforms:
    """The parent <- child poses of the static transforms seen so far (newest wins)."""

    def __init__(self, edges=None):
        self.edges = dict(edges or {})    # (parent, child) -> 4x4 parent <- child

    def add(self, message):
        """Add the transforms of one tf2_msgs/TFMessage."""
        for parent, child, _, pose in list(_decoded(message)):   # all or nothing
            self.edges[(parent, child)] = pose

    @property
    def frames(self):
        return sorted({frame for edge in self.edges for frame in edge})

    def chain(self, source, target):
        """
        Return (4x4 pose of ``target`` in ``source``, [source, ..., target]).

        Raise TransformError naming the frames the recording has when no chain connects them.
        """
        source, target = source.lstrip('/'), target.lstrip('/')
        neighbours = {}
        for parent, child in self.edges:
            neighbours.setdefault(parent, []).append(child)
            neighbours.setdefault(child, []).append(parent)
        previous = {source: None}
        queue = deque([source])
        while queue and target not in previous:
            frame = queue.popleft()
            for other in neighbours.get(frame, ()):
                if other not in previous:
                    previous[other] = frame
                    queue.append(other)
        if target not in previous:
            raise TransformError(f'no chain of transforms from {source!r} to {target!r}; '
                                 f'the frames are: {", ".join(self.frames) or "none"}')
        path = [target]
        while path[-1] != source:
            path.append(previous[path[-1]])
        path.reverse()
        pose = np.eye(4)
        for a, b in zip(path, path[1:]):
            pose = pose @ (self.edges[(a, b)] if (a, b) in self.edges
                           else geometry.invert_pose(self.edges[(b, a)]))
        return pose, path


class TransformHistory:
    """
    Static transforms plus the last ``keep_s`` seconds of each dynamic (/tf) edge, by stamp.

    ``chain(source, target, stamp)`` composes the tree as it was at ``stamp``: static edges
    always, each dynamic edge at its newest pose stamped at or before ``stamp`` (no
    interpolation; ``stamp=None``: its newest pose). Thread-safe for one writer and readers
    (each edge's list is replaced, never changed in place, once filled).
    """

    def __init__(self, keep_s=10.0):
        self.static = StaticTransforms()
        self.dynamic = {}    # (parent, child) -> [(stamp ns, 4x4)], increasing stamps
        self.keep_ns = int(keep_s * 1e9)

    def add(self, message, static=False):
        """Add one tf2_msgs/TFMessage (of /tf_static when ``static``); raise TransformError."""
        if static:
            self.static.add(message)
            return
        for parent, child, stamp, pose in list(_decoded(message)):   # all or nothing
            samples = list(self.dynamic.get((parent, child), ()))
            insort(samples, (stamp, pose), key=lambda sample: sample[0])
            newest = samples[-1][0]
            self.dynamic[(parent, child)] = [s for s in samples if s[0] >= newest - self.keep_ns]

    def chain(self, source, target, stamp=None):
        """Return (pose of ``target`` in ``source`` at ``stamp``, [source, ..., target])."""
        edges = dict(self.static.edges)
        for edge, samples in list(self.dynamic.items()):
            known = [pose for at, pose in samples if stamp is None or at <= stamp]
            if known:
                edges[edge] = known[-1]
        try:
            return StaticTransforms(edges).chain(source, target)
        except TransformError as exc:
            when = '' if stamp is None else f' at stamp {stamp}'
            raise TransformError(f'{exc}{when}') from None
