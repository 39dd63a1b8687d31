"""The TF tree over time (data.tf_tree.TransformHistory): static edges always, dynamic by stamp."""

from mowm_ros.data.tf_tree import TransformError, TransformHistory
from mowm_ros.planning.paths import planar_base_pose
import numpy as np
import pytest
from tf_fixtures import tf_message, transform_stamped

MAP_ODOM_1 = planar_base_pose(1.0, 2.0, 0.5)
MAP_ODOM_2 = planar_base_pose(-3.0, 0.5, -1.0)
ODOM_BASE = planar_base_pose(0.4, 0.0, 0.2)
SECOND = 1_000_000_000


def test_chain_takes_each_dynamic_edge_at_or_before_the_stamp():
    history = TransformHistory()
    history.add(tf_message(transform_stamped('odom', 'base_link', ODOM_BASE, 0)), static=True)
    # Out of order: the later value first.
    history.add(tf_message(transform_stamped('map', 'odom', MAP_ODOM_2, 5 * SECOND)))
    history.add(tf_message(transform_stamped('/map', 'odom', MAP_ODOM_1, 2 * SECOND)))
    with pytest.raises(TransformError, match=f'at stamp {SECOND}'):
        history.chain('map', 'base_link', SECOND)
    pose, path = history.chain('map', 'base_link', 4 * SECOND)
    assert path == ['map', 'odom', 'base_link']
    np.testing.assert_allclose(pose, MAP_ODOM_1 @ ODOM_BASE, atol=1e-9)
    np.testing.assert_allclose(history.chain('map', 'base_link', 5 * SECOND)[0],
                               MAP_ODOM_2 @ ODOM_BASE, atol=1e-9)
    np.testing.assert_allclose(history.chain('base_link', 'map')[0],
                               np.linalg.inv(MAP_ODOM_2 @ ODOM_BASE), atol=1e-9)


def test_old_samples_go_and_a_bad_message_changes_nothing():
    history = TransformHistory(keep_s=1.0)
    history.add(tf_message(transform_stamped('map', 'odom', MAP_ODOM_1, SECOND)))
    history.add(tf_message(transform_stamped('map', 'odom', MAP_ODOM_2, 3 * SECOND)))
    with pytest.raises(TransformError, match="no chain of transforms from 'map' to 'odom'"):
        history.chain('map', 'odom', 2 * SECOND)         # the first is more than 1 s older
    bad = transform_stamped('map', 'odom', MAP_ODOM_1, 4 * SECOND)
    bad.transform.rotation.w = float('nan')
    good = transform_stamped('odom', 'base_link', ODOM_BASE, 4 * SECOND)
    with pytest.raises(TransformError, match='NaN'):
        history.add(tf_message(good, bad))
    with pytest.raises(TransformError, match='base_link'):
        history.chain('map', 'base_link')
    np.testing.assert_allclose(history.chain('map', 'odom')[0], MAP_ODOM_2, atol=1e-9)
