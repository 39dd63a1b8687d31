"""
Split one recording by time into training stretches and held-out evaluation stretches.

The held-out stretches are spread over the recording: it is cut into N equal parts and the
last ``stretch_frames`` of each part are held out (C observed then H predicted model frames,
``frame_skip`` stored frames apart, as the memory benchmark splits an episode). The frames
just after a held-out stretch (as many as it predicts) are left out of training too, so no
training frame was taken moments after a predicted one. Everything else is training data, one
stretch per run of consecutive frames. Revisit labels of a held-out stretch are computed
within it (a predicted frame is a revisit when an earlier frame of the stretch, 10 s or more
before, saw the same place); training stretches keep the recording's labels.
"""

from dataclasses import dataclass

from mowm_ros.data.episode import Episode
from mowm_ros.data.revisit import revisit_labels, RevisitConfig
import numpy as np

REVISIT_EXTRAS = ('revisit', 'revisit_overlap', 'revisit_source')
WHOLE_RECORDING_EXTRAS = ('K_camera',)   # extras that are not one entry per frame


class SplitError(ValueError):
    """A recording too short to split; the message says how many frames are missing."""


@dataclass
class StretchConfig:
    context: int = 60            # observed model frames of a held-out stretch (C)
    horizon: int = 20            # predicted model frames (H)
    frame_skip: int = 2          # stored frames between model frames
    held_out: float = 0.2        # fraction of the recording held out (at least one stretch)
    max_stretches: int = 8
    window_frames: int = 9       # stored frames of one training window (K * skip + 1)
    min_train_windows: int = 1   # training windows needed (a batch)

    def __post_init__(self):
        if min(self.context, self.horizon, self.frame_skip, self.max_stretches,
               self.window_frames, self.min_train_windows) < 1:
            raise ValueError('context, horizon, frame_skip, max_stretches, window_frames and '
                             'min_train_windows must be >= 1')
        if not 0.0 < self.held_out < 1.0:
            raise ValueError(f'held_out must be in (0, 1), got {self.held_out}')

    @property
    def stretch_frames(self):
        """Return the stored frames of one held-out stretch."""
        return (self.context + self.horizon - 1) * self.frame_skip + 1

    @property
    def guard_frames(self):
        """Return the stored frames after a held-out stretch that training leaves out."""
        return self.horizon * self.frame_skip


def plan_split(frames, config):
    """Return (training ranges, held-out ranges) as lists of (start, stop) stored frames."""
    length = config.stretch_frames
    count = int(np.clip(round(config.held_out * frames / length), 1, config.max_stretches))
    bounds = np.linspace(0, frames, count + 1).round().astype(int)
    held_out = [(int(end) - length, int(end)) for end in bounds[1:]]
    excluded = np.zeros(frames, bool)
    for start, stop in held_out:
        excluded[max(start, 0):stop + config.guard_frames] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[1], excluded.astype(int), [1]])))
    train = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]
    return train, held_out


def training_windows(ranges, window_frames):
    return sum(max(0, stop - start - window_frames + 1) for start, stop in ranges)


def check_split(frames, seconds, config):
    """Return the plan of ``plan_split``; raise SplitError when it is too short to use."""
    train, held_out = plan_split(frames, config)
    windows = training_windows(train, config.window_frames)
    apart = all(a[1] <= b[0] for a, b in zip(held_out, held_out[1:]))
    if held_out[0][0] >= 0 and apart and windows >= config.min_train_windows:
        return train, held_out
    length = config.stretch_frames
    needed = len(held_out) * length + (len(held_out) - 1) * config.guard_frames + \
        config.window_frames + config.min_train_windows - 1
    period = seconds / max(frames - 1, 1)
    raise SplitError(
        f'too few frames: the recording gives {frames} ({seconds:.1f} s, one every '
        f'{period:.2f} s after thinning); adapting needs at least {needed}: '
        f'{len(held_out)} held-out stretch{"es" * (len(held_out) > 1)} of {length} frames '
        f'({config.context} observed + {config.horizon} predicted model frames, '
        f'{config.frame_skip} frames apart) with {config.guard_frames} left out after each, '
        f'and {config.min_train_windows} training window{"s" * (config.min_train_windows > 1)} '
        f'of {config.window_frames} frames (found {windows}). Record longer, or lower '
        f'--context, --horizon or --batch-size')


def slice_episode(episode, start, stop, meta=None):
    """Frames [start, stop) of ``episode``; extras with one entry per frame are sliced too."""
    frames = len(episode)

    def cut(array):
        return None if array is None else array[start:stop]

    extras = {name: (value[start:stop] if name not in WHOLE_RECORDING_EXTRAS and np.ndim(value)
                     and len(value) == frames else value)
              for name, value in episode.extras.items()}
    return Episode(rgb=cut(episode.rgb), pose=cut(episode.pose), K=episode.K,
                   stamp=cut(episode.stamp), depth=cut(episode.depth),
                   action=cut(episode.action), extras=extras,
                   meta={**episode.meta, **(meta or {}), 'frames_of_recording': [start, stop]})


def relabel_revisits(episode, revisit_config=None):
    """Revisit labels of ``episode`` computed within it (no depth: none are revisits)."""
    if episode.depth is None:
        for name in REVISIT_EXTRAS:
            episode.extras.pop(name, None)
        episode.extras['revisit'] = np.zeros(len(episode), bool)
        return episode
    config = revisit_config or RevisitConfig()
    labels = revisit_labels(episode.depth, episode.pose, episode.K, episode.stamp,
                            config.min_gap_seconds * 1e9, config)
    episode.extras.update(zip(REVISIT_EXTRAS, labels))
    episode.meta['revisit_fraction'] = float(labels[0].mean())
    return episode


def split_recording(episode, config):
    """Return (training episodes, held-out episodes) of one imported recording."""
    stamps = episode.stamp
    train, held_out = check_split(len(episode), (stamps[-1] - stamps[0]) / 1e9, config)
    training = [slice_episode(episode, a, b, {'seed': i, 'split': 'train'})
                for i, (a, b) in enumerate(train)]
    evaluation = [relabel_revisits(slice_episode(episode, a, b, {'seed': i, 'split': 'held_out'}))
                  for i, (a, b) in enumerate(held_out)]
    return training, evaluation
