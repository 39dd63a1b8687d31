"""
Distance the camera has travelled, and since when it has travelled less than a given distance.

With drifting wheel odometry (``mowm_ros.data.drift``) the pose error grows with the distance
travelled, so what the memories hold from long ago lies elsewhere in the odometry frame; the
recent stretch stays consistent. ``TravelLog`` answers "which stamp was ``metres`` of travel
ago", which is how far back a memory can be trusted (``WorldModelConfig.trust_travel_m``).
Only the part of the drive within ``keep_m`` is kept, so the log stays bounded over hours.
"""

from collections import deque
import math

import numpy as np


class TravelLog:

    def __init__(self, keep_m=math.inf) -> None:
        if not (keep_m > 0):
            raise ValueError(f'keep_m must be positive, got {keep_m}')
        self.keep_m = keep_m
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
        self._log.append((int(stamp), self.distance))
        # Drop entries older than keep_m of travel, keeping the last one beyond it.
        while len(self._log) > 1 and self._log[1][1] < self.distance - self.keep_m:
            self._log.popleft()

    def stamp_within(self, metres) -> int | None:
        """
        Return the stamp of the oldest pose logged within the last ``metres`` of travel.

        None before any pose was logged. ``metres`` beyond ``keep_m`` answer as for ``keep_m``.
        """
        if not self._log:
            return None
        since = self.distance - metres
        for stamp, distance in self._log:
            if distance >= since:
                return stamp
        return self._log[-1][0]
