"""
Held-out Memory Maze episodes for evaluation: generated once into a cache directory, reused.

Seeds start at 100,000 by default, far from the training seeds (the shipped checkpoint saw
seeds 0-23; its memory test uses 90,001). An episode is split into C observed model frames,
``frame_skip`` env steps apart, and the H frames that follow at the same spacing, which are
predicted along their true poses and labelled revisit or novel by the episode's labels.
"""

from dataclasses import dataclass
from pathlib import Path

from mowm_ros.data.episode import load_episode
from mowm_ros.data.generate import generate_dataset
from mowm_ros.data.maze_env import episode_name, GenerationConfig
import numpy as np

HELD_OUT_SEED_START = 100_000


@dataclass
class EpisodeSplit:
    """Frame indices of an episode: observed (C,) and predicted (H,), and revisit labels."""

    observed: np.ndarray
    targets: np.ndarray
    revisit: np.ndarray          # bool (H,) for the targets
    has_labels: bool


def split_episode(episode, context, horizon, frame_skip):
    """Return the EpisodeSplit of C observed then H predicted frames, frame_skip apart."""
    if context < 1 or horizon < 1 or frame_skip < 1:
        raise ValueError('context, horizon and frame_skip must be >= 1')
    observed = np.arange(context) * frame_skip
    targets = (context + np.arange(horizon)) * frame_skip
    if targets[-1] >= len(episode):
        raise ValueError(f'an episode of {len(episode)} frames is too short for {context} '
                         f'context and {horizon} predicted frames {frame_skip} apart '
                         f'(needs {targets[-1] + 1})')
    labels = episode.extras.get('revisit')
    has_labels = labels is not None
    revisit = (np.asarray(labels, dtype=bool)[targets] if has_labels
               else np.zeros(horizon, dtype=bool))
    return EpisodeSplit(observed, targets, revisit, has_labels)


class MazeEpisodeCache:
    """Generate Memory Maze episodes into ``directory`` on first use; load them afterwards."""

    def __init__(self, directory, config=None):
        self.directory = Path(directory)
        self.config = (config or GenerationConfig()).check()

    def path(self, seed):
        return self.directory / episode_name(self.config.maze_size, seed)

    def __call__(self, seed):
        report = generate_dataset(self.directory, [seed], self.config, workers=1,
                                  progress=False)
        if report.failed:
            raise RuntimeError(f'generating episode {seed} failed: {report.failed[0][1]}')
        return load_episode(self.path(seed))
