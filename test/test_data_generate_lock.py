"""`mowm data generate` holds its directory: a second run is refused; own temporaries go."""

import subprocess
import sys

from episode_fixtures import synthetic_episode
from mowm_ros.cli import main
from mowm_ros.data.episode import save_episode
from mowm_ros.data.generate import DirectoryBusy, generate_dataset, LOCK_NAME
from mowm_ros.data.maze_env import episode_name, GenerationConfig
import pytest

CONFIG = GenerationConfig(steps=12, frame_skip=2)

HOLDER = """
import sys
from mowm_ros.data.generate import directory_lock
with directory_lock(sys.argv[1]):
    print('holding', flush=True)
    sys.stdin.readline()
"""


def complete_episode(directory, seed):
    """Save an episode the run will find complete (same parameters): nothing to simulate."""
    episode = synthetic_episode(frames=2)
    episode.meta['params'] = CONFIG.params()
    path = directory / episode_name(CONFIG.maze_size, seed)
    save_episode(path, episode)
    return path


def test_a_second_run_is_refused_naming_the_first_and_may_go_once_it_ended(tmp_path, capsys):
    complete_episode(tmp_path, 0)
    holder = subprocess.Popen([sys.executable, '-c', HOLDER, str(tmp_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'holding', 'the first run did not start'
        with pytest.raises(DirectoryBusy, match=rf'in use by another .*pid {holder.pid}'):
            generate_dataset(tmp_path, [0], CONFIG, workers=1, progress=False)
        assert main(['data', 'generate', '--out', str(tmp_path), '--episodes', '1',
                     '--steps', '12', '--frame-skip', '2', '--no-progress']) == 2
        assert f'pid {holder.pid}' in capsys.readouterr().err
    finally:
        holder.kill()               # however the first run ends, the system drops its lock
        holder.wait(timeout=20)
    report = generate_dataset(tmp_path, [0], CONFIG, workers=1, progress=False)
    assert report.skipped == [0] and (tmp_path / LOCK_NAME).exists()


def test_only_the_temporaries_of_the_runs_own_episodes_are_removed(tmp_path):
    own = complete_episode(tmp_path, 0)
    stale = [tmp_path / f'.{own.name}.k1ll3d.tmp',
             tmp_path / f'.{own.with_suffix(".json").name}.k1ll3d.tmp']
    # Another seed's (written by another tool, or by a run over other seeds before this one
    # took the lock) and files that merely look alike are not this run's.
    others = [tmp_path / f'.{episode_name(CONFIG.maze_size, 7)}.w0rk1ng.tmp',
              tmp_path / '.ep_notes.tmp', tmp_path / 'ep_keep.tmp']
    for path in stale + others:
        path.write_bytes(b'partial')
    report = generate_dataset(tmp_path, [0], CONFIG, workers=1, progress=False)
    assert report.skipped == [0]
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in others)
