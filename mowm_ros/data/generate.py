"""
Generate a directory of Memory Maze episodes: parallel processes, progress, resume.

One file per seed (``ep_09x09_s000123.npz`` + ``.json``). A seed whose files are complete and
were made with the same parameters is skipped, so an interrupted run resumes where it stopped;
a truncated or corrupt file is reported by name and generated again; files made with other
parameters stop the run (use another directory, or ``force``). Episodes are written
atomically, so Ctrl-C never leaves a partial episode behind.

A run holds a lock on its directory (``.mowm_generate.lock``, an advisory ``flock`` the
system releases when the process ends, however it ends); a second run into the same directory
is refused with a message naming the holder. Temporary files left by a killed run are removed
only for the seeds the new run owns, and only while it holds the lock.
"""

import contextlib
from dataclasses import dataclass, field
import fcntl
import logging
import multiprocessing
import os
from pathlib import Path
import time

from mowm_ros.data.episode import (check_episode_file, EpisodeError, load_episode, save_episode,
                                   temporary_files)
from mowm_ros.data.exploration import ExplorationConfig
from mowm_ros.data.maze_env import episode_name, generate_episode, GenerationConfig
from mowm_ros.data.revisit import RevisitConfig
from tqdm import tqdm

log = logging.getLogger(__name__)

LOCK_NAME = '.mowm_generate.lock'


class ParameterMismatch(RuntimeError):
    """The output directory holds episodes generated with other parameters."""


class DirectoryBusy(RuntimeError):
    """Another run is generating into the same output directory."""


@contextlib.contextmanager
def directory_lock(directory):
    """Hold the generation lock of ``directory``; raise DirectoryBusy when another run has it."""
    path = Path(directory) / LOCK_NAME
    handle = open(path, 'a+')
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or 'another process'
            raise DirectoryBusy(
                f'{directory} is in use by another `mowm data generate` ({holder}, holding '
                f'{path}); wait for it to finish or write to another directory') from None
        handle.seek(0)
        handle.truncate()
        handle.write(f'pid {os.getpid()}\n')
        handle.flush()
        yield path
    finally:
        handle.close()          # releases the lock; the file stays (removing it would race)


@dataclass
class RunReport:
    generated: list = field(default_factory=list)   # stats dicts of new episodes
    skipped: list = field(default_factory=list)     # seeds already complete
    replaced: list = field(default_factory=list)    # (file name, reason) regenerated
    failed: list = field(default_factory=list)      # (seed, error) that raised
    seconds: float = 0.0

    @property
    def env_steps(self):
        return sum(stats['env_steps'] for stats in self.generated)

    def steps_per_second_per_core(self):
        """Env steps per second of stepping time in one process (reset and labels excluded)."""
        busy = sum(stats['stepping_seconds'] for stats in self.generated)
        return self.env_steps / busy if busy else 0.0


def config_from_params(params):
    """Rebuild a GenerationConfig from ``GenerationConfig.params()`` (plain JSON data)."""
    params = dict(params)
    exploration = ExplorationConfig(**params.pop('exploration'))
    revisit = RevisitConfig(**params.pop('revisit'))
    return GenerationConfig(exploration=exploration, revisit=revisit, **params)


def existing_state(path, params, verify=False):
    """Return 'missing', 'complete' or the reason an existing episode must be regenerated."""
    path = Path(path)
    if not path.exists() and not path.with_suffix('.json').exists():
        return 'missing'
    try:
        meta = load_episode(path).meta if verify else check_episode_file(path)
    except EpisodeError as exc:
        return str(exc)
    if meta.get('params') != params:
        raise ParameterMismatch(f'{path} was generated with other parameters '
                                f'({_differences(meta.get("params"), params)}); '
                                'write to another directory or pass --force')
    return 'complete'


def _differences(old, new):
    if not isinstance(old, dict):
        return 'no parameters recorded'
    keys = sorted(set(old) | set(new))
    return ', '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in keys
                     if old.get(k) != new.get(k))


def _remove_stale_temporaries(paths):
    # A process killed in the middle of an atomic write leaves its temporary file behind. Only
    # the episodes of this run's seeds are touched: the lock keeps other runs out of them.
    for path in paths:
        for stale in temporary_files(path):
            stale.unlink(missing_ok=True)


def _init_worker():
    os.environ.setdefault('MUJOCO_GL', 'osmesa')


def generate_one(task):
    """Generate and save one episode; ``task`` is (seed, params, output path). Return stats."""
    seed, params, path = task
    try:
        episode, stats = generate_episode(seed, config_from_params(params))
        save_episode(path, episode)
    except Exception as exc:  # noqa: B902 - one broken seed must not stop the others
        log.exception('seed %d failed', seed)
        return {'seed': seed, 'error': f'{type(exc).__name__}: {exc}'}
    return stats


def generate_dataset(out_dir, seeds, config, workers=2, force=False, verify=False,
                     progress=True):
    """
    Generate the episodes of ``seeds`` into ``out_dir``; return a RunReport.

    Raises DirectoryBusy when another run holds ``out_dir``'s lock.
    """
    config.check()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with directory_lock(out_dir):
        return _generate_locked(out_dir, seeds, config, workers, force, verify, progress)


def _generate_locked(out_dir, seeds, config, workers, force, verify, progress):
    started = time.perf_counter()
    paths = {seed: out_dir / episode_name(config.maze_size, seed) for seed in seeds}
    _remove_stale_temporaries(paths.values())
    params = config.params()
    report = RunReport()
    tasks = []
    for seed, path in paths.items():
        state = 'missing' if force else existing_state(path, params, verify)
        if state == 'complete':
            report.skipped.append(seed)
            continue
        if state != 'missing':
            log.warning('regenerating %s: %s', path.name, state)
            report.replaced.append((path.name, state))
        tasks.append((seed, params, str(path)))

    bar = tqdm(total=len(tasks), unit='episode', disable=not progress, desc='generate')
    try:
        for stats in _run(tasks, workers):
            bar.update()
            if 'error' in stats:
                report.failed.append((stats['seed'], stats['error']))
                continue
            report.generated.append(stats)
            bar.set_postfix(seed=stats['seed'], revisit=f'{stats["revisit_fraction"]:.2f}',
                            steps_s=f'{report.steps_per_second_per_core():.0f}')
    finally:
        bar.close()
    report.seconds = time.perf_counter() - started
    return report


def _run(tasks, workers):
    if workers <= 1 or len(tasks) <= 1:
        _init_worker()
        for task in tasks:
            yield generate_one(task)
        return
    context = multiprocessing.get_context('spawn')
    pool = context.Pool(min(workers, len(tasks)), initializer=_init_worker)
    try:
        yield from pool.imap_unordered(generate_one, tasks)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
