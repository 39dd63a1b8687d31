"""
Overload: a 640x480 RGB-D camera at 60 Hz into the world_model node, whose model is slower.

The node and the camera (test/camera_publisher.py: rendered maze frames, restamped) run as
processes of their own on the test's DDS domain, with the Fast DDS profile for camera-sized
messages (config/fastdds_large_data.xml; without it most 640x480 samples are lost in transport
before the node sees them). A prediction is requested every 0.1 s, far faster than the model
predicts on this CPU. The node must keep integrating memory (frames observed close to frames
sent, few or no observations dropped), drop only prediction requests (counted in
/diagnostics) and keep the age of its predictions bounded.
"""

import json
from pathlib import Path
import subprocess
import sys

from node_listener import NodeListener
import numpy as np
import pytest
from ros_harness import wait_for

pytestmark = [pytest.mark.ros, pytest.mark.slow]

RATE_HZ = 60.0
SIZE = '640x480'
SECONDS = 10.0
REPO = Path(__file__).resolve().parent.parent
DDS_PROFILE = REPO / 'config' / 'fastdds_large_data.xml'


def large_data_env(ros):
    env = ros.subprocess_env()
    env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(DDS_PROFILE)
    return env


def stop(process, timeout=15):
    if process.poll() is None:
        process.send_signal(subprocess.signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_node_keeps_integrating_at_60_hz_and_drops_only_predictions(ros, tmp_path):
    node_command = [sys.executable, '-m', 'mowm_ros.nodes.world_model_node', '--ros-args']
    for parameter in ('prediction_period_s:=0.1', 'memory_period_s:=1.0', 'horizon:=2',
                      'sampler_steps:=2', 'torch_threads:=1', 'extrinsics_from_tf:=false'):
        node_command += ['-p', parameter]
    camera_command = [sys.executable, str(REPO / 'test' / 'camera_publisher.py'),
                      '--rate', str(RATE_HZ), '--size', SIZE, '--seconds', str(SECONDS)]
    log_path = tmp_path / 'node.log'
    listener = NodeListener(ros.node('listener'))
    with open(log_path, 'wb') as log:
        node = subprocess.Popen(node_command, env=large_data_env(ros), stdout=log,
                                stderr=subprocess.STDOUT)
    camera = subprocess.Popen(camera_command, env=large_data_env(ros), stdout=subprocess.PIPE,
                              text=True)
    try:
        lines, _ = camera.communicate(timeout=SECONDS + 90)
        summary = json.loads(lines.strip().splitlines()[-1])
        assert 'sent' in summary, (lines, log_path.read_text()[-3000:])
        sent = summary['sent']
        # The camera has ended: wait for diagnostics sent after that which show the node's
        # observation queue drained (every frame it received observed, dropped or rejected).
        updates = listener.updates
        wait_for(lambda: listener.updates >= updates + 2
                 and listener.value('observation queue') == 0, timeout=120,
                 what=lambda: f'the observation queue to drain: {listener.snapshot()}')
        values = listener.snapshot()
        received = int(values['frames received'])
        observed = int(values['frames observed'])
        dropped_observations = int(values['dropped observations'])
        dropped_predictions = int(values['dropped prediction requests'])
        published = int(values['predictions published'])
        ages = np.array(listener.ages())
        per_frame_s = float(values['prediction latency (ms per frame)']) / 1000
        report = (f'camera {summary}; node: received {received}, observed {observed}, '
                  f'dropped observations '
                  f'{dropped_observations}, dropped prediction requests {dropped_predictions}, '
                  f'predictions {published}, latency '
                  f'{values.get("prediction latency (ms per frame)")} ms/frame, prediction age '
                  f'median {np.median(ages) if len(ages) else "n/a"} max '
                  f'{ages.max() if len(ages) else "n/a"} s; diagnostics {values}')
        print(report)
        assert node.poll() is None, log_path.read_text()[-3000:]
        # How many frames DDS delivers depends on the load (55-86% alone, 43% beside a soak
        # run): that is transport, not the node, so only a working stream is required. What
        # the node receives it must observe.
        assert 20 <= received <= sent, report
        assert observed >= 0.9 * received, report
        assert dropped_observations <= 0.02 * received, report
        assert dropped_predictions > 0 and published >= 2, report
        # The newest request wins: a prediction starts from a frame at most one prediction
        # old and takes one more (horizon 2, so 2 * 2 frames), never a backlog. Both sides are
        # measured in this run, so the bound scales with the machine's load.
        assert np.median(ages) < 2 * 2 * per_frame_s + 1.0, report
    finally:
        stop(camera)
        stop(node)
