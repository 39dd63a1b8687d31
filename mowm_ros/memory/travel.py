"""
Distance the camera has travelled, and since when it has travelled less than a given distance.

With drifting wheel odometry (``mowm_ros.data.drift``) the pose error grows with the distance
travelled, so what the memories hold from long ago lies elsewhere in the odometry frame; the
recent stretch stays consistent. ``TravelLog`` answers "which stamp was ``metres`` of travel
ago", which is how far back a memory can be trusted (``WorldModelConfig.trust_travel_m``).
Only the part of the drive within ``keep_m`` is kept, one entry per ``keep_m / 256`` of
travel at most, so the log stays bounded over hours, standing still included.
"""

from collections import deque
import math

import numpy as np


RESOLUTION = 256     # entries per keep_m of travel, at most


class TravelLog:

    def __init__(self, keep_m) -> None:
        if not (0 < keep_m < math.inf):
            raise ValueError(f'keep_m must be positive and finite, got {keep_m}')
        self.keep_m = keep_m
        self.spacing_m = keep_m / RESOLUTION
        self.reset()

    def reset(self) -> None:
        self.distance = 0.0
        self._position = None
        self._log = deque()         # (stamp ns, distance travelled when it was taken)

    def __len__(self):
        return len(self._log)

    def add(self, pose, stamp) -> None:
        """Record the camera ``pose`` (4x4, world <- camera) observed at ``stamp`` (ns)."""
        position = np.asarray(pose, dtype=np.float64)[:2, 3]
        if self._position is not None:
            self.distance += float(np.hypot(*(position - self._position)))
        self._position = position
        # A pose that travelled less than spacing_m since the last entry adds none: the older
        # entry answers for both (at most spacing_m more trust than asked).
        if not self._log or self.distance - self._log[-1][1] >= self.spacing_m:
            self._log.append((int(stamp), self.distance))
        # Drop entries older than keep_m of travel, keeping the last one beyond it.
        while len(self._log) > 1 and self._log[1][1] < self.distance - self.keep_m:
            self._log.popleft()

    def stamp_within(self, metres) -> int | None:
        """
        Return the stamp of the oldest pose logged within the last ``metres`` of travel.

        None before any pose was logged. ``metres`` beyond ``keep_m`` answer as for ``keep_m``;
        the answer is exact to ``spacing_m``.
        """
        if not self._log:
            return None
        since = self.distance - metres
        for stamp, distance in self._log:
            if distance >= since:
                return stamp
        return self._log[-1][0]
