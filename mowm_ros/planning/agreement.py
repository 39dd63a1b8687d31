"""
How well predicted views agree with the spatial memory: a score for a path's imagined views.

The memory renders what it holds at each pose; where it covers a pixel, the predicted colour
should match it. The score is one minus the mean absolute colour difference (in [0, 1]) over
the covered pixels of all views, so 1 is perfect agreement; it says nothing where the memory
has not been, which ``coverage`` reports.
"""

from dataclasses import dataclass
import math

import numpy as np


@dataclass(frozen=True)
class Agreement:
    score: float      # 1 - mean |predicted - memory| / 255 on covered pixels; NaN: too little
    coverage: float   # share of the views' pixels the memory covers


def memory_agreement(predicted, rendered, covered, min_coverage=0.02) -> Agreement:
    """
    Score ``predicted`` (N, S, S, 3) uint8 against memory renders ``rendered`` (same shape).

    ``covered`` (N, S, S) says which rendered pixels hold memory. Below ``min_coverage`` of
    the pixels the score is NaN: the memory cannot vouch for views of places it has not seen.
    """
    predicted, rendered = np.asarray(predicted), np.asarray(rendered)
    covered = np.asarray(covered, dtype=bool)
    if predicted.shape != rendered.shape or predicted.shape[:-1] != covered.shape:
        raise ValueError(f'views {predicted.shape}, renders {rendered.shape} and coverage '
                         f'{covered.shape} must match')
    coverage = float(covered.mean()) if covered.size else 0.0
    if coverage < min_coverage or not covered.any():
        return Agreement(math.nan, coverage)
    difference = np.abs(predicted.astype(np.float32) - rendered.astype(np.float32)) / 255.0
    return Agreement(float(1.0 - difference[covered].mean()), coverage)
