"""
SIGKILL a process while it writes memory snapshots; the next load must be complete.

Run as a script, this file is a small fork server ("zygote"): it imports the package once and
forks one writer per request, so each kill costs milliseconds instead of a Python start-up.
The writer saves snapshots whose content is fixed by a number, reporting each step on stdout;
the test kills it at every step of ``MemoryStore.save`` and at random moments, then checks that
``load`` returns a snapshot equal to one that was fully written: the newest complete one, or the
one being written once it had been renamed into place.
"""

import os
import random
import select
import signal
import subprocess
import sys
import time

from memory_scenes import known_memories
from mowm_ros.memory.store import MemoryStore
import numpy as np
import torch

STEPS = ('serialised', 'locked', 'temporary', 'wrote:spatial.npz', 'wrote:episodic.npz',
         'wrote:adapter.safetensors', 'wrote:manifest.json', 'renamed', 'pruned')
SIZE = {'points': 60_000, 'keyframes': 24}


def run_writer(store_directory, first_content, stop_at):
    """Save snapshots of content first_content, +1, ...; at step ``stop_at`` wait forever."""
    store = MemoryStore(store_directory)
    content = first_content
    while True:
        spatial, episodic, adapter = known_memories(content, **SIZE)

        def report(step):
            os.write(1, f'step {content} {step}\n'.encode())
            if step == stop_at:
                while True:
                    time.sleep(1.0)

        store.save(spatial, episodic, adapter, extra_meta={'content': content},
                   on_stage=report)
        os.write(1, f'saved {content}\n'.encode())
        content += 1


def zygote(store_directory):
    """Fork a writer per 'fork <content> <step>' line; reap on 'reap <pid>'."""
    known_memories(0, **SIZE)   # warm every code path once before forking
    for line in sys.stdin:
        words = line.split()
        if words[0] == 'fork':
            pid = os.fork()
            if pid == 0:
                try:
                    run_writer(store_directory, int(words[1]), words[2])
                finally:
                    os._exit(1)
            os.write(1, f'pid {pid}\n'.encode())
        elif words[0] == 'reap':
            os.waitpid(int(words[1]), 0)
            os.write(1, b'reaped\n')
        else:
            break


class Zygote:
    def __init__(self, store_directory):
        self.process = subprocess.Popen([sys.executable, __file__, str(store_directory)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        cwd=os.path.dirname(__file__))
        self.pending = b''

    def send(self, line):
        self.process.stdin.write(f'{line}\n'.encode())
        self.process.stdin.flush()

    def read_line(self, timeout_s=60.0):
        deadline = time.monotonic() + timeout_s
        while b'\n' not in self.pending:
            remaining = deadline - time.monotonic()
            assert remaining > 0, 'the zygote or its writer stopped answering'
            ready, _, _ = select.select([self.process.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                assert chunk, 'the zygote exited'
                self.pending += chunk
        line, self.pending = self.pending.split(b'\n', 1)
        return line.decode()

    def read_lines_available(self):
        while select.select([self.process.stdout], [], [], 0.0)[0]:
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                break
            self.pending += chunk
        lines = self.pending.split(b'\n')
        self.pending = lines.pop()
        return [line.decode() for line in lines]

    def fork(self, content, stop_at='-'):
        self.send(f'fork {content} {stop_at}')
        while True:
            line = self.read_line()
            if line.startswith('pid '):
                return int(line.split()[1])

    def kill_and_reap(self, pid):
        os.kill(pid, signal.SIGKILL)
        self.send(f'reap {pid}')
        lines = []
        while True:
            line = self.read_line()
            if line == 'reaped':
                return lines
            lines.append(line)

    def close(self):
        if self.process.poll() is None:
            try:
                self.send('quit')
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def assert_holds_content(snapshot, content):
    spatial, episodic, adapter = known_memories(content, **SIZE)
    assert snapshot.meta['content'] == content
    for stored, expected in ((snapshot.spatial, spatial.to_arrays()),
                             (snapshot.episodic, episodic.to_arrays())):
        assert stored.keys() == expected.keys()
        for name in expected:
            np.testing.assert_array_equal(stored[name], expected[name])
    assert all(torch.equal(snapshot.adapter[name], value) for name, value in adapter.items())


def test_sigkill_during_save_always_leaves_a_complete_snapshot(tmp_path):
    store = MemoryStore(tmp_path)
    zygote_process = Zygote(tmp_path)
    rng = random.Random(7)
    try:
        # One complete snapshot first: killed only once it has been pruned.
        pid = zygote_process.fork(0, 'pruned')
        while zygote_process.read_line() != 'step 0 pruned':
            pass
        zygote_process.kill_and_reap(pid)
        complete, content = 0, 1

        # Killed at every step of save: before the rename the previous snapshot must load,
        # from the rename on the new one.
        for step in STEPS:
            pid = zygote_process.fork(content, step)
            while zygote_process.read_line() != f'step {content} {step}':
                pass
            zygote_process.kill_and_reap(pid)
            snapshot = store.load()
            renamed = STEPS.index(step) >= STEPS.index('renamed')
            expected = content if renamed else complete
            assert snapshot is not None and snapshot.rejected == [], step
            assert_holds_content(snapshot, expected)
            if renamed:
                complete = content
            content += 1

        # Killed at random moments of a writer saving in a loop.
        for _ in range(8):
            first = content
            pid = zygote_process.fork(first)
            time.sleep(rng.uniform(0.0, 0.4))
            lines = zygote_process.read_lines_available()
            lines += zygote_process.kill_and_reap(pid)
            steps = [int(line.split()[1]) for line in lines if line.startswith('step ')]
            renamed = [int(line.split()[1]) for line in lines if line.endswith(' renamed')]
            in_flight = steps[-1] if steps else first
            committed = max(renamed, default=complete)
            snapshot = store.load()
            assert snapshot is not None and snapshot.rejected == []
            # The kill may land between the rename and its report: then the in-flight one.
            assert snapshot.meta['content'] in {committed, in_flight}
            assert snapshot.meta['content'] >= committed
            assert_holds_content(snapshot, snapshot.meta['content'])
            complete = snapshot.meta['content']
            content = in_flight + 1
        assert len(store.snapshot_paths()) <= 2
    finally:
        zygote_process.close()


if __name__ == '__main__':
    zygote(sys.argv[1])
