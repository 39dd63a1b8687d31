"""
A worker thread with a bounded queue: the newest requests win, older ones are dropped and counted.

Capacity 1 is "latest request only" (predictions); a larger capacity buffers bursts
(observations). Exceptions in the work function are counted and passed to ``on_error``; the
worker keeps running.
"""

from collections import deque
import threading
import time


class LatestWorker:

    def __init__(self, name, work, capacity=1, on_error=None):
        self.name = name
        self._work = work
        self._on_error = on_error
        self._queue = deque()
        self.capacity = capacity
        self._condition = threading.Condition()
        self._stopped = False
        self.dropped = 0
        self.done = 0
        self.failed = 0
        self.busy = False
        self.last_seconds = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, request):
        with self._condition:
            if self._stopped:
                return
            while len(self._queue) >= self.capacity:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(request)
            self._condition.notify()

    @property
    def pending(self):
        with self._condition:
            return len(self._queue)

    def wait_idle(self, timeout=None):
        """Block until the queue is empty and no request is running; return whether it is."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while self._queue or self.busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    def stop(self, timeout=10.0):
        with self._condition:
            self._stopped = True
            self._queue.clear()
            self._condition.notify_all()
        self._thread.join(timeout)

    def _run(self):
        while True:
            with self._condition:
                while not self._queue and not self._stopped:
                    self._condition.wait()
                if self._stopped:
                    return
                request = self._queue.popleft()
                self.busy = True
            start = time.perf_counter()
            try:
                self._work(request)
                self.done += 1
            except Exception as exc:  # noqa: B902 - a failed request must not kill the worker
                self.failed += 1
                if self._on_error is not None:
                    self._on_error(self.name, exc)
            finally:
                self.last_seconds = time.perf_counter() - start
                with self._condition:
                    self.busy = False
                    self._condition.notify_all()
