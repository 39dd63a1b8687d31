"""
The rows of the memory benchmark: which experts predict, how they are composed.

Every row is evaluated on the same observed memories, finetuned adapters, target poses and
initial noise; only the experts and the composition differ. The sliding-window row is the
no-memory baseline given the compute of the full composition (see ``sliding_window``).
"""

from dataclasses import dataclass

from mowm_ros.model.experts import EXPERT_NAMES

COMPOSED = 'composed'
SLIDING_WINDOW = 'sliding_window'


@dataclass(frozen=True)
class Row:
    name: str
    experts: tuple = ('short_term',)
    mode: str = 'contrastive'         # contrastive | naive
    kind: str = COMPOSED              # composed | sliding_window
    description: str = ''


ROWS = (
    Row('no memory', ('short_term',), description='short-term expert alone (4 recent frames)'),
    Row('+ episodic', ('short_term', 'episodic'),
        description='short-term + episodic (LoRA finetuned at test time), contrastive'),
    Row('+ spatial', ('short_term', 'spatial'),
        description='short-term + spatial (point-cloud render), contrastive'),
    Row('all three, contrastive', EXPERT_NAMES,
        description='short-term + episodic + spatial, contrastive product of experts'),
    Row('all three, naive sum', EXPERT_NAMES, mode='naive',
        description='sum of the three conditional predictions (no memory-less twins)'),
    Row('sliding window', ('short_term',), kind=SLIDING_WINDOW,
        description='short-term expert on 3 views of the last 10 frames, averaged: the '
                    'compute of the full composition, no memory'),
)

ROWS_BY_NAME = {row.name: row for row in ROWS}
# Rows by their short command-line names.
ROW_KEYS = {'stm': 'no memory', 'episodic': '+ episodic', 'spatial': '+ spatial',
            'all': 'all three, contrastive', 'naive': 'all three, naive sum',
            'window': 'sliding window'}


def rows_from_keys(keys):
    """Rows for short names (``ROW_KEYS``), in the benchmark's order."""
    unknown = set(keys) - set(ROW_KEYS)
    if unknown:
        raise ValueError(f'unknown rows {sorted(unknown)}; known: {sorted(ROW_KEYS)}')
    wanted = {ROW_KEYS[key] for key in keys}
    return tuple(row for row in ROWS if row.name in wanted)
