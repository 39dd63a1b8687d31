"""TransformSource: lookups from its own TF history, and from a tf2 buffer past its newest."""

from mowm_ros.nodes.transforms import TransformError, TransformSource
from mowm_ros.planning.paths import planar_base_pose
import numpy as np
import pytest
from tf_fixtures import tf_message, transform_stamped

MAP_ODOM = planar_base_pose(1.0, -2.0, 0.4)
SECOND = 1_000_000_000


class StandInBuffer:
    """
    Answers like tf2_ros.Buffer.lookup_transform for one transform stamped at ``stamp``.

    Mocked because it cannot exist here: tf2_ros is not in the pip-only ROS wheels. Like tf2
    it answers at that stamp or for the newest (time zero) and refuses to extrapolate.
    """

    def __init__(self, stamp):
        self.stamp = stamp

    def lookup_transform(self, target, source, time):
        if (target, source) != ('map', 'odom'):
            raise LookupError(f'"{target}" and "{source}" are not connected')
        if time.nanoseconds not in (0, self.stamp):
            raise RuntimeError('Lookup would require extrapolation')
        return transform_stamped('map', 'odom', MAP_ODOM, self.stamp)


def test_tf2_buffer_at_the_stamp_or_past_its_newest_but_never_before_it():
    source = TransformSource(StandInBuffer(2 * SECOND))
    assert source.backend == 'tf2_ros'
    np.testing.assert_allclose(source.lookup('map', 'odom', 2 * SECOND), MAP_ODOM, atol=1e-9)
    np.testing.assert_allclose(source.lookup('map', 'odom', 3 * SECOND), MAP_ODOM, atol=1e-9)
    with pytest.raises(TransformError, match='extrapolation'):
        source.lookup('map', 'odom', SECOND)
    with pytest.raises(TransformError, match='not connected'):
        source.lookup('map', 'base_link', 3 * SECOND)


def test_own_history_drops_a_bad_message_counted():
    source = TransformSource()
    bad = transform_stamped('map', 'odom', MAP_ODOM, SECOND)
    bad.transform.translation.x = float('inf')
    source.add(tf_message(bad))
    assert source.rejected == 1
    with pytest.raises(TransformError, match="no chain of transforms from 'map' to 'odom'"):
        source.lookup('map', 'odom', SECOND)
    source.add(tf_message(transform_stamped('map', 'odom', MAP_ODOM, 0)), static=True)
    np.testing.assert_allclose(source.lookup('map', 'odom', SECOND), MAP_ODOM, atol=1e-9)
