"""`mowm demo` end to end on a short route: real sim robot, world model and monitor over DDS."""

import json

from mowm_ros import cli
import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_demo_writes_its_outputs_and_a_summary(tmp_path, capsys, domain_id, monkeypatch):
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain_id))
    out = tmp_path / 'demo'
    assert cli.main(['demo', '--out', str(out), '--steps', '40', '--rate', '8']) == 0
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['frames_observed'] >= 30
    assert metrics['predictions_published'] >= 1
    assert metrics['memory_points'] > 1000 and metrics['keyframes'] >= 1
    assert metrics['all_predictions_scored'] == (metrics['revisit_predictions_scored']
                                                 + metrics['novel_predictions_scored'])
    header = (out / 'memory_cloud.ply').read_bytes()[:200]
    assert header.startswith(b'ply') and b'element vertex' in header
    from PIL import Image
    if metrics['all_predictions_scored']:
        assert np.asarray(Image.open(out / 'revisits.png')).ndim == 3
    assert (out / 'memory' / 'snapshots').is_dir()
    printed = capsys.readouterr().out
    assert 'demo finished' in printed and 'PSNR' in printed


def test_rgb_only_demo_predicts_from_short_term_and_episodic(tmp_path, capsys, domain_id,
                                                             monkeypatch):
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain_id))
    out = tmp_path / 'demo'
    assert cli.main(['demo', '--out', str(out), '--steps', '24', '--rate', '8',
                     '--rgb-only']) == 0
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['experts'] == ['short_term', 'episodic']
    assert metrics['memory_points'] == 0 and metrics['keyframes'] >= 1
    assert metrics['predictions_published'] >= 1
    assert not (out / 'memory_cloud.ply').exists(), 'an empty cloud was written'
    printed = capsys.readouterr().out
    assert 'demo finished' in printed and 'PSNR' in printed and 'memory_cloud' not in printed
