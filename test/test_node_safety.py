"""
Safe configuration of the world_model node: parameters validated when set, snapshots confined.

Invalid values are refused with the reason, when the node is configured (the transition fails
naming the parameter; a standalone process exits with it) and when set at run time
(SetParametersResult.reason); parameters read only at configure are read only. A snapshot
directory whose ``snapshots`` entry leads outside it makes saving fail with a logged reason,
never writes outside, and never kills the node.
"""

import math
import os

from mowm_ros.nodes.world_model_node import WorldModelNode
import pytest
from rclpy.parameter import Parameter

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def make_node(ros, **values):
    """Create and configure + activate the node; a failed configure raises its reason."""
    values = {'finetune': False, 'extrinsics_from_tf': False, **values}
    node = WorldModelNode(context=ros.context, parameter_overrides=[
        Parameter(name, value=value) for name, value in values.items()])
    try:
        return node.start()
    except ValueError:
        node.destroy_node()
        raise


INVALID_START_UP = [
    ('prediction_period_s', math.nan, 'finite'),
    ('prediction_period_s', 0.0, '> 0'),
    ('horizon', 0, '>= 1'),
    ('keyframe_capacity', 1, '>= 2'),
    ('experts', ['short_term', 'telepathy'], 'subset'),
    ('composition', 'average', 'contrastive'),
    ('camera_extrinsics', [0.0] * 6, '7 finite values'),
    ('device', 'tpu', 'cuda'),
]


def test_invalid_start_up_values_are_refused_naming_the_parameter(ros, tmp_path):
    for name, value, reason in INVALID_START_UP:
        with pytest.raises(ValueError, match=reason) as error:
            make_node(ros, **{name: value})
        assert name in str(error.value)
    (tmp_path / 'file').write_text('x')
    with pytest.raises(ValueError, match='not a directory'):
        make_node(ros, snapshot_dir=str(tmp_path / 'file'))


def test_parameters_are_validated_when_set_and_applied_when_live(ros, tmp_path,
                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    outside = tmp_path / 'outside'
    outside.mkdir()
    store = tmp_path / 'memory'
    store.mkdir()
    node = make_node(ros, snapshot_dir='memory')        # relative: resolved once, at start
    try:
        assert node.snapshot_dir == str(store)
        results = node.set_parameters([Parameter('horizon', value=0)])
        # Refused by the declared range (rclpy checks it before the node's own check).
        assert not results[0].successful and 'Min: 1' in results[0].reason
        results = node.set_parameters([Parameter('costmap_resolution', value=math.inf)])
        assert not results[0].successful and 'out of range' in results[0].reason
        results = node.set_parameters([Parameter('sampler_steps', value=2)])
        assert not results[0].successful and 'read-only' in results[0].reason
        results = node.set_parameters([Parameter('horizon', value='two')])
        assert not results[0].successful
        assert node.params['horizon'] == 4 and node.get_parameter('horizon').value == 4
        results = node.set_parameters([Parameter('horizon', value=2),
                                       Parameter('integration_max_width', value=0)])
        assert all(r.successful for r in results), results
        assert node.params['horizon'] == 2 and node.params['integration_max_width'] == 0

        # A snapshots entry leading outside the store: saving fails, nothing escapes.
        os.chdir(outside)
        (store / 'snapshots').symlink_to(outside, target_is_directory=True)
        node._periodic_snapshot()                          # logs, does not raise
        response = node._save_memory(None, type('Response', (), {})())
        assert not response.success and 'outside the store' in response.message
        assert list(outside.iterdir()) == []
    finally:
        node.close()                                      # saving fails again: logged
        node.destroy_node()
    assert list(outside.iterdir()) == []
