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
    check_recording(out / 'demo.rrd', metrics)


def check_recording(path, metrics):
    """demo.rrd, read back with rerun's dataframe API, holds what the demo saw."""
    from rrd_tables import read_rrd, rows
    table = read_rrd(path)
    frames = rows(table, 'world/camera/rgb', 'Image:buffer')
    assert 30 <= frames <= 41            # 40 steps and the spawn; sensor QoS may drop some
    assert rows(table, 'world/camera/depth', 'DepthImage:buffer') == frames
    assert rows(table, 'world/camera', 'Transform3D:translation') >= 30
    assert rows(table, 'world/camera', 'Pinhole:image_from_camera') >= 1
    assert 1 <= rows(table, 'world/prediction/rgb', 'Image:buffer') \
        <= metrics['predictions_published']
    assert rows(table, 'world/predicted_path', 'LineStrips3D:strips') >= 1
    for entity, component in (('world/memory', 'Points3D:positions'),
                              ('world/keyframes', 'Arrows3D:vectors'),
                              ('metrics/latency_ms', 'Scalars:scalars'),
                              ('metrics/memory_points', 'Scalars:scalars')):
        assert rows(table, entity, component) >= 1, entity
    scored = metrics['all_predictions_scored']
    if scored:
        assert rows(table, 'scored/predicted', 'Image:buffer') == scored
        assert rows(table, 'metrics/psnr', 'Scalars:scalars') == scored
