"""
SIGKILL the world_model node process at random moments while it snapshots its memory.

The node runs as its own process (``python -m mowm_ros.nodes.world_model_node``) on the test's
DDS domain, fed by an in-process episode player looping a rendered maze episode, with a
snapshot every second. It is killed with SIGKILL several times at random moments and started
again each time on the same snapshot directory. While it runs, the test reads every new
complete snapshot; afterwards the directory must load completely (nothing rejected) and hold
every keyframe and at least as many points as the newest snapshot completed before the last
kill, and every keyframe of every earlier snapshot, so each restart restored the memory.
"""

import os
import random
import signal
import subprocess
import sys
import threading
import time

from mowm_ros.data.episode import save_episode
from mowm_ros.memory.store import MemoryStore
from mowm_ros.nodes.episode_player import EpisodePlayer
import pytest
from rclpy.parameter import Parameter
from ros_harness import wait_for
from scene_episodes import maze_episode

pytestmark = [pytest.mark.ros, pytest.mark.slow]

KILLS = 4


class SnapshotWatcher:
    """Read every new complete snapshot of a store directory on a thread."""

    def __init__(self, directory):
        self.directory = directory
        self.seen = {}            # sequence -> (keyframe stamps, points)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        store = MemoryStore(self.directory)
        while not self._stop.wait(0.1):
            paths = store.snapshot_paths()
            if not paths or self.newest() >= int(paths[0].name.split('-')[0]):
                continue
            snapshot = store.load()     # may race with pruning: then an older one comes back
            if snapshot is not None:
                with self._lock:
                    self.seen[snapshot.sequence] = _content(snapshot)

    def newest(self):
        with self._lock:
            return max(self.seen, default=0)

    def content(self, sequence):
        with self._lock:
            return self.seen[sequence]

    def every(self):
        with self._lock:
            return dict(self.seen)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)


def _content(snapshot):
    stamps = set() if snapshot.episodic is None else set(snapshot.episodic['stamp'].tolist())
    points = 0 if snapshot.spatial is None else len(snapshot.spatial_memory())
    return stamps, points


def start_node(ros, snapshot_dir, log):
    command = [sys.executable, '-m', 'mowm_ros.nodes.world_model_node', '--ros-args']
    for parameter in (f'snapshot_dir:={snapshot_dir}', 'snapshot_period_s:=1.0',
                      'finetune:=false', 'sampler_steps:=1', 'horizon:=1',
                      'prediction_period_s:=5.0', 'memory_period_s:=5.0',
                      'extrinsics_from_tf:=false'):
        command += ['-p', parameter]
    return subprocess.Popen(command, env=ros.subprocess_env(), stdout=log,
                            stderr=subprocess.STDOUT)


def test_sigkill_during_snapshots_loses_no_completed_keyframe(ros, tmp_path):
    seed = int(os.environ.get('MOWM_CRASH_SEED', random.randrange(10**6)))
    rng = random.Random(seed)
    episode_path = tmp_path / 'maze.npz'
    save_episode(episode_path, maze_episode(150, size=(64, 64), rate_hz=10.0))
    snapshot_dir = tmp_path / 'memory'
    player = ros.add(EpisodePlayer(context=ros.context, parameter_overrides=[
        Parameter('episode', value=str(episode_path)), Parameter('rate_hz', value=10.0),
        Parameter('loop', value=True)]))
    watcher = SnapshotWatcher(snapshot_dir)
    log_path = tmp_path / 'node.log'
    kills = []
    try:
        with open(log_path, 'wb') as log:
            for incarnation in range(KILLS):
                before = watcher.newest()
                known = watcher.content(before)[0] if before else set()
                process = start_node(ros, snapshot_dir, log)
                try:
                    # Running: it completed a snapshot of its own, with new keyframes in it.
                    wait_for(lambda: watcher.newest() > before
                             and watcher.content(watcher.newest())[0] - known,
                             timeout=40, interval=0.05,
                             what=lambda: f'incarnation {incarnation} to write a snapshot with '
                                          f'keyframes (seed {seed}):\n'
                                          f'{log_path.read_text()[-3000:]}')
                    assert process.poll() is None, log_path.read_text()[-3000:]
                    time.sleep(rng.uniform(0.0, 2.0))
                finally:
                    process.send_signal(signal.SIGKILL)
                    process.wait(timeout=10)
                kills.append(watcher.newest())
    finally:
        watcher.stop()
    assert player.frames_published > 0

    store = MemoryStore(snapshot_dir)
    snapshot = store.load()
    assert snapshot is not None and store.rejected == [], store.rejected
    assert snapshot.spatial is not None and snapshot.episodic is not None
    spatial, episodic = snapshot.spatial_memory(), snapshot.episodic_buffer()
    assert len(episodic) == len(snapshot.episodic['stamp']) and len(spatial) > 0
    stamps, points = _content(snapshot)
    last_stamps, last_points = watcher.content(kills[-1])
    assert snapshot.sequence >= kills[-1], (snapshot.sequence, kills)
    assert last_stamps <= stamps, (f'keyframes of snapshot {kills[-1]} lost: '
                                   f'{sorted(last_stamps - stamps)} (seed {seed})')
    assert points >= last_points
    seen = watcher.every()
    for sequence, (earlier, _) in seen.items():
        assert earlier <= stamps, f'keyframes of snapshot {sequence} lost (seed {seed})'
