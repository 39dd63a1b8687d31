"""
CPU threads of the model's workers: one OpenMP team per process, the sampler first.

PyTorch's CPU ops run on libgomp, which gives every OS thread that runs a parallel op its own
team of worker threads, kept alive as long as that thread lives. libgomp counts them, and once
there are more of them than CPUs it stops spin-waiting between parallel regions (300,000 spins
become 100): from then on the sampler's worker sleeps on a futex after every op and must be
woken for the next one. On a 2-core machine the finetuning thread's team alone does that, and
it doubled the sampler's latency even while the finetuner sat idle (issue 16). So a background
thread runs single-threaded (no team) and at a lower priority, and every sampling call runs
with the thread count the model was built with (``torch.set_num_threads`` in one thread also
sets the default of threads that have not run an op yet).

The sampler's default thread count leaves the finetuner its core: on 2 cores, a 2-thread
sampler beside a busy finetuning thread oversubscribes the machine, and the node's predictions
fell more than 10 s behind the camera (``sampler_threads``).
"""

import logging
import os
import threading

import torch

log = logging.getLogger(__name__)


def available_cpus():
    """Return how many CPUs this process may run on (its affinity mask where there is one)."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def sampler_threads(requested, busy_elsewhere):
    """
    Return the intra-op thread count for sampling.

    ``requested`` when it is > 0 (the user said so), otherwise the CPUs left beside
    ``busy_elsewhere`` threads that run at the same time (the finetuner), never more than
    torch's current count (a process-wide ``torch.set_num_threads`` is a cap) and never fewer
    than one.
    """
    if requested > 0:
        return int(requested)
    return max(1, min(torch.get_num_threads(), available_cpus() - busy_elsewhere))


def use_threads(count):
    """Run this thread's torch ops on ``count`` intra-op threads (a no-op when they already do)."""
    if count > 0 and torch.get_num_threads() != count:
        torch.set_num_threads(count)


def lower_priority(increment):
    """Make the calling thread ``increment`` nicer (Linux: per thread); False where refused."""
    if increment <= 0:
        return True
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
        return True
    except (AttributeError, OSError) as error:  # not Linux, or not permitted
        log.warning('could not lower the priority of thread %s: %s',
                    threading.current_thread().name, error)
        return False


def background_thread_setup(count, increment):
    """Call first thing on a background torch thread: ``count`` intra-op threads, nicer."""
    use_threads(count)
    lower_priority(increment)
