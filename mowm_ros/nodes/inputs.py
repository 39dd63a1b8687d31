"""
Input bookkeeping of the world model node, without rclpy: odometry at image stamps, RGB-D pairs.

Stamps are integer nanoseconds. Both classes are thread-safe and reject bad input with a
ValueError that names the problem, keeping what they already hold.
"""

from collections import deque
import threading

from mowm_ros import geometry
import numpy as np


class OdometryBuffer:
    """Recent base poses by stamp; ``pose_at`` interpolates (SE(3), slerp) between them."""

    def __init__(self, capacity=400, max_gap_s=0.5):
        self._samples = deque(maxlen=capacity)     # (stamp_ns, pose 4x4), increasing stamps
        self.max_gap_ns = int(max_gap_s * 1e9)
        self._lock = threading.Lock()

    def add(self, stamp, pose):
        geometry.check_pose(pose, 'odometry pose')
        with self._lock:
            if self._samples and stamp < self._samples[-1][0]:
                raise ValueError(f'odometry stamp {stamp} goes backwards '
                                 f'(last {self._samples[-1][0]})')
            if self._samples and stamp == self._samples[-1][0]:
                self._samples[-1] = (stamp, np.array(pose, dtype=np.float64))
            else:
                self._samples.append((stamp, np.array(pose, dtype=np.float64)))

    def latest(self):
        """Return (stamp, pose) of the newest sample, or None."""
        with self._lock:
            return self._samples[-1] if self._samples else None

    def clear(self):
        with self._lock:
            self._samples.clear()

    def pose_at(self, stamp):
        """Return the pose at ``stamp``, or None when no sample lies within max_gap of it."""
        with self._lock:
            samples = list(self._samples)
        if not samples:
            return None
        stamps = np.array([s for s, _ in samples], dtype=np.int64)
        index = int(np.searchsorted(stamps, stamp))
        if index < len(stamps) and stamps[index] == stamp:
            return samples[index][1].copy()
        if 0 < index < len(stamps):
            (t0, p0), (t1, p1) = samples[index - 1], samples[index]
            if t1 - t0 > 2 * self.max_gap_ns:
                return None
            return geometry.interpolate_pose(p0, p1, (stamp - t0) / (t1 - t0))
        nearest = samples[0] if index == 0 else samples[-1]
        if abs(nearest[0] - stamp) <= self.max_gap_ns:
            return nearest[1].copy()
        return None


class StampPairer:
    """
    Pair colour and depth images whose stamps agree within ``slop``.

    The stand-in for message_filters' ApproximateTimeSynchronizer where that package is
    missing. Unpaired images older than the newest pair are dropped and counted.
    """

    def __init__(self, slop_s=0.02, capacity=8):
        self.slop_ns = int(slop_s * 1e9)
        self._colour = deque(maxlen=capacity)
        self._depth = deque(maxlen=capacity)
        self.dropped = 0
        self._lock = threading.Lock()

    def add_colour(self, stamp, item):
        return self._add(self._colour, self._depth, stamp, item, colour_first=True)

    def add_depth(self, stamp, item):
        return self._add(self._depth, self._colour, stamp, item, colour_first=False)

    def _add(self, own, other, stamp, item, colour_first):
        """Return (colour item, depth item, stamp) when ``item`` completes a pair, else None."""
        with self._lock:
            best = None
            for index, (other_stamp, _) in enumerate(other):
                gap = abs(other_stamp - stamp)
                if gap <= self.slop_ns and (best is None or gap < best[0]):
                    best = (gap, index)
            if best is None:
                own.append((stamp, item))
                return None
            other_stamp, other_item = other[best[1]]
            self.dropped += sum(1 for s, _ in other if s < other_stamp)
            self.dropped += sum(1 for s, _ in own if s < stamp)
            for queue, newest in ((other, other_stamp), (own, stamp)):
                while queue and queue[0][0] <= newest:
                    queue.popleft()
            pair_stamp = min(stamp, other_stamp)
            if colour_first:
                return item, other_item, pair_stamp
            return other_item, item, pair_stamp


class RateMeter:
    """Messages per second over a sliding window of arrival times (seconds on the node clock)."""

    def __init__(self, window_s=5.0):
        self.window_s = window_s
        self._times = deque()
        self._lock = threading.Lock()

    def tick(self, now):
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def rate(self, now):
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)

    def _trim(self, now):
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
