"""
Split one recording by time into training stretches and held-out evaluation stretches.

The held-out stretches are spread over the recording: it is cut into N equal parts and the
last ``stretch_frames`` of each part are held out (C observed then H predicted model frames,
``frame_skip`` stored frames apart, as the memory benchmark splits an episode). The frames
just after a held-out stretch (as many as it predicts) are left out of training too, so no
training frame was taken moments after a predicted one. Everything else is training data, one
stretch per run of consecutive frames. A recording made of separate runs (several bags, or
frames dropped at an odometry gap) is first cut where consecutive frames lie more than
``max_gap_s`` apart: no held-out stretch or training stretch spans such a jump, and every
run long enough gets a held-out stretch, the rest shared by length. Revisit labels of a
held-out stretch are computed within it (a predicted frame is a revisit when an earlier
frame of the stretch, 10 s or more before, saw the same place); training stretches keep the
recording's labels.
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
    # Consecutive frames further apart than this (or than 3 median frame periods, if longer)
    # belong to separate runs of the recording.
    max_gap_s: float = 1.0

    def __post_init__(self):
        if min(self.context, self.horizon, self.frame_skip, self.max_stretches,
               self.window_frames, self.min_train_windows) < 1:
            raise ValueError('context, horizon, frame_skip, max_stretches, window_frames and '
                             'min_train_windows must be >= 1')
        if not 0.0 < self.held_out < 1.0:
            raise ValueError(f'held_out must be in (0, 1), got {self.held_out}')
        if not self.max_gap_s > 0:
            raise ValueError(f'max_gap_s must be > 0, got {self.max_gap_s}')

    @property
    def stretch_frames(self):
        """Return the stored frames of one held-out stretch."""
        return (self.context + self.horizon - 1) * self.frame_skip + 1

    @property
    def guard_frames(self):
        """Return the stored frames after a held-out stretch that training leaves out."""
        return self.horizon * self.frame_skip


def continuous_runs(stamps, config):
    """Return (start, stop) of each run of frames with no jump over the gap limit in time."""
    stamps = np.asarray(stamps, np.int64)
    if len(stamps) < 2:
        return [(0, len(stamps))]
    period = np.diff(stamps) / 1e9
    limit = max(config.max_gap_s, 3 * float(np.median(period)))
    edges = [0, *(np.flatnonzero(period > limit) + 1).tolist(), len(stamps)]
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def share_stretches(count, lengths, length):
    """
    Share ``count`` held-out stretches among runs of ``lengths`` frames.

    Only runs that hold a whole stretch get any (the longest run when none does: the split
    then fails its check with the numbers). Each such run, longest first, gets one while they
    last, so the evaluation sees every run; the rest go by length (largest remainder).
    """
    lengths = np.asarray(lengths, float)
    eligible = lengths >= length
    if not eligible.any():
        eligible[np.argmax(lengths)] = True
    shares = np.zeros(len(lengths), int)
    order = [i for i in np.argsort(-lengths, kind='stable') if eligible[i]]
    shares[order[:count]] = 1
    left = count - shares.sum()
    if left > 0:
        weights = np.where(eligible, lengths, 0.0)
        raw = left * weights / weights.sum()
        extra = np.floor(raw).astype(int)
        for index in np.argsort(-(raw - extra), kind='stable')[:left - extra.sum()]:
            extra[index] += 1
        shares += extra
    return shares.tolist()


def plan_split(frames, config, runs=None):
    """
    Return (training ranges, held-out ranges) as lists of (start, stop) stored frames.

    ``runs`` are the recording's continuous runs (``continuous_runs``; default: one run).
    """
    runs = runs or [(0, frames)]
    length = config.stretch_frames
    count = int(np.clip(round(config.held_out * frames / length), 1, config.max_stretches))
    train, held_out = [], []
    shares = share_stretches(count, [b - a for a, b in runs], length)
    for (start, stop), share in zip(runs, shares):
        excluded = np.zeros(stop - start, bool)
        bounds = np.linspace(start, stop, share + 1).round().astype(int)
        for end in bounds[1:]:
            held_out.append((int(end) - length, int(end)))
            excluded[max(int(end) - length - start, 0):end - start + config.guard_frames] = True
        edges = np.flatnonzero(np.diff(np.concatenate([[1], excluded.astype(int), [1]])))
        train += [(start + int(a), start + int(b)) for a, b in zip(edges[::2], edges[1::2])]
    return train, held_out


def training_windows(ranges, window_frames):
    return sum(max(0, stop - start - window_frames + 1) for start, stop in ranges)


def check_split(frames, seconds, config, runs=None):
    """Return the plan of ``plan_split``; raise SplitError when it is too short to use."""
    runs = runs or [(0, frames)]
    train, held_out = plan_split(frames, config, runs)
    windows = training_windows(train, config.window_frames)
    within = all(any(start <= a and b <= stop for start, stop in runs) for a, b in held_out)
    apart = all(a[1] <= b[0] for a, b in zip(held_out, held_out[1:]))
    if within and apart and windows >= config.min_train_windows:
        return train, held_out
    length = config.stretch_frames
    needed = len(held_out) * length + (len(held_out) - 1) * config.guard_frames + \
        config.window_frames + config.min_train_windows - 1
    period = seconds / max(frames - 1, 1)
    in_runs = '' if len(runs) == 1 else (
        f' in {len(runs)} separate runs (frames more than {config.max_gap_s:g} s apart; '
        f'a stretch never spans the jump), the longest '
        f'{max(b - a for a, b in runs)} frames')
    raise SplitError(
        f'too few frames: the recording gives {frames} ({seconds:.1f} s, one every '
        f'{period:.2f} s after thinning){in_runs}; adapting needs at least {needed}: '
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


DROPPED = {'images_outside_odometry': "outside the odometry's span or in its gaps",
           'images_without_depth': 'without a depth image near in time',
           'images_other_size': 'of another image size',
           'images_other_camera_info': 'taken under another camera_info'}


def dropped_by_import(counts):
    """Say which images the import left out and why (empty when none), for SplitError."""
    parts = [f'{counts[key]} {why}' for key, why in DROPPED.items() if counts.get(key)]
    return f' (the import left out images: {"; ".join(parts)})' if parts else ''


def split_recording(episode, config):
    """Return (training episodes, held-out episodes) of one imported recording."""
    stamps = episode.stamp
    try:
        train, held_out = check_split(len(episode), (stamps[-1] - stamps[0]) / 1e9, config,
                                      continuous_runs(stamps, config))
    except SplitError as error:
        raise SplitError(f'{error}{dropped_by_import(episode.meta.get("counts", {}))}') \
            from None
    training = [slice_episode(episode, a, b, {'seed': i, 'split': 'train'})
                for i, (a, b) in enumerate(train)]
    evaluation = [relabel_revisits(slice_episode(episode, a, b, {'seed': i, 'split': 'held_out'}))
                  for i, (a, b) in enumerate(held_out)]
    return training, evaluation
