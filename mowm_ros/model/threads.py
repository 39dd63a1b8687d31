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
"""

import logging
import os
import threading

import torch

log = logging.getLogger(__name__)


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
