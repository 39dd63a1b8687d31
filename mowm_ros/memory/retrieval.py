"""
Episodic keyframes taken near a target pose: the context the episodic expert predicts from.

A revisit is a place the robot stood at before, so among the episodic keyframes there are
views taken from about the target pose. Given as the network's context frames, with the
motions that chain them to the target, the network does what it was trained for (predict a
view from nearby views and the motion between them), but from what the camera really saw
there instead of the recent frames or its own earlier predictions. No depth is needed, so
it works for an RGB-only camera; with drifting odometry it finds what the drifted poses
say is near.

Ranking: distance in the plane plus ``metres_per_radian`` times the heading difference. A
target is served only when its best keyframe lies within ``radius_m`` and ``max_turn``, and
(decided by the world model) when the spatial memory's render covers less than
``max_render_coverage`` of it: with depth, the render recalls what it covers better.
"""

from dataclasses import dataclass
import math

from mowm_ros import geometry
import numpy as np


@dataclass(frozen=True)
class RetrievalConfig:
    # On the memory benchmark's revisits, one-step predictions from the retrieved keyframes
    # beat those from the last observed frames by +3.15 dB within 0.6 m and 0.5 rad, +3.54
    # within 1.5 m and 1.2 rad, +3.82 within 3 m at any heading (8 episodes, 336 revisits):
    # the nearest views help even a few metres off.
    radius_m: float = 3.0            # the best keyframe must be this close ...
    max_turn: float = math.pi        # ... and turned at most this much (radians)
    metres_per_radian: float = 0.5   # heading difference in the ranking
    # Where the spatial memory's render covers at least this share of the target view, the
    # render already recalls the place: keyframes are not retrieved there (with the render,
    # retrieving them cost 0.65 dB on the benchmark's rgbd revisits instead of adding).
    max_render_coverage: float = 0.5
    # Keyframes replace the recent frames only where the best of them ranks this much nearer
    # the target than the newest observed frame (metres of rank score). Just ahead of the
    # robot its recent frames predict better: in `mowm demo --rgb-only` (views 0.5-1 s ahead)
    # retrieving with no such margin cost 0.8 dB, with 1 m 0.5 dB, with 2 m nothing; on the
    # benchmark's revisits (one step, 8 episodes) a 2 m margin keeps +3.39 of +3.82 dB.
    min_gain_m: float = 2.0

    def __post_init__(self):
        if not (self.radius_m > 0 and self.max_turn > 0 and self.metres_per_radian >= 0
                and 0 <= self.max_render_coverage <= 1 and self.min_gain_m >= 0):
            raise ValueError(f'retrieval needs radius_m > 0, max_turn > 0, '
                             f'metres_per_radian >= 0, max_render_coverage in [0, 1] and '
                             f'min_gain_m >= 0, got {self}')


def rank_score(poses, target_pose, config=RetrievalConfig()):
    """Return (score, distance, turn) of each camera pose (N, 4, 4) from ``target_pose``."""
    planar = geometry.planar_pose(np.asarray(poses).reshape(-1, 4, 4))
    target = geometry.planar_pose(np.asarray(target_pose))
    distance = np.hypot(planar[:, 0] - target[0], planar[:, 1] - target[1])
    turn = np.abs(geometry.wrap_angle(planar[:, 2] - target[2]))
    return distance + config.metres_per_radian * turn, distance, turn


def nearest_keyframes(keyframe_poses, target_pose, count, config=RetrievalConfig(),
                      newest_pose=None):
    """
    Return the indices of the ``count`` keyframes ranked nearest ``target_pose``.

    Ordered farthest first and nearest last (the newest context frame is the one the network
    leans on most); fewer keyframes than ``count`` repeat the farthest. None when no keyframe
    lies within ``radius_m`` and ``max_turn`` of the target, or when ``newest_pose`` (the
    newest observed frame's camera pose) ranks within ``min_gain_m`` of the best keyframe:
    just ahead of the robot its own recent frames are the better context.
    """
    if len(keyframe_poses) == 0:
        return None
    score, distance, turn = rank_score(keyframe_poses, target_pose, config)
    best = int(np.argmin(score))
    if distance[best] > config.radius_m or turn[best] > config.max_turn:
        return None
    if newest_pose is not None and \
            rank_score(newest_pose, target_pose, config)[0][0] < score[best] + config.min_gain_m:
        return None
    ranked = np.argsort(score, kind='stable')[:count][::-1]
    return np.concatenate([np.repeat(ranked[:1], count - len(ranked)), ranked])
