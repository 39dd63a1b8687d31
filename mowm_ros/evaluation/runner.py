"""
The memory benchmark: observe C frames of a held-out episode, predict H along the true poses.

For every episode a fresh WorldModel observes the C context frames with their poses and
depth (spatial memory, short-term context, episodic keyframes with test-time finetuning).
Finetuning is allowed to catch up before anything is predicted: with ``finetune_sync =
'keyframe'`` the evaluation waits after every admitted keyframe until its finetuning steps
have run (as if the robot moved no faster than the finetuner), with ``'end'`` only once before
predicting (keyframes arriving faster than the steps are then capped by the finetuner's
backlog limit). Then every row predicts the same H frames from the same state and the same
initial noise. Each episode's result is one JSON file (and an npz of strip frames), written
atomically; a rerun skips episodes whose file matches the settings. The checkpoint is known
by its path only: after retraining it in place, write to another ``out_dir``.

Conditions (``EvalConfig.condition``) change what the world model is given, never the truth
it is scored against: ``rgbd`` (the default protocol: colour, depth and true poses), ``rgb-only``
(no depth, so the spatial memory stays empty and only rows without the spatial expert are
evaluated) and ``drift`` (colour and depth, but every pose the model observes and is queried
at carries a seeded wheel-odometry drift, ``mowm_ros.data.drift``, drawn per episode from
``drift`` with the episode's seed). Results of other conditions than ``rgbd`` go to
``<out_dir>/<condition>/`` and their settings signature names the condition, so results of
different conditions never mix and the ``rgbd`` results of earlier runs stay valid.
"""

from dataclasses import asdict, dataclass, field, replace
import json
import logging
from pathlib import Path
import time

from mowm_ros.atomic import atomic_write
from mowm_ros.data.drift import drift_trajectory, DriftConfig
from mowm_ros.data.maze_env import GenerationConfig
from mowm_ros.data.resize import to_model_frame
from mowm_ros.evaluation import metrics
from mowm_ros.evaluation.episodes import HELD_OUT_SEED_START, MazeEpisodeCache, split_episode
from mowm_ros.evaluation.rows import COMPOSED, ROWS
from mowm_ros.evaluation.sliding_window import imagine_sliding_window, STRIDES
from mowm_ros.model.experts import EXPERT_NAMES
from mowm_ros.world_model import Frame, WorldModel, WorldModelConfig
import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)

RESULT_FORMAT = 2
FINETUNE_SYNC = ('keyframe', 'end')
CONDITIONS = ('rgbd', 'rgb-only', 'drift')
DEFAULT_CONDITION = 'rgbd'


@dataclass
class EvalConfig:
    out_dir: str = 'runs/eval'
    cache_dir: str = ''              # '' = <out_dir>/episodes (generated episodes)
    checkpoint: str = ''             # '' = the shipped checkpoint
    device: str = 'auto'
    episodes: int = 32
    seed_start: int = HELD_OUT_SEED_START
    context: int = 450               # observed model frames
    horizon: int = 42                # predicted model frames
    frame_skip: int = 2              # env steps between model frames (as in training)
    maze_size: int = 9
    episode_steps: int = 1000        # env steps generated per episode
    sampler_steps: int = 4
    seed: int = 0                    # sampler noise (the same for every row)
    finetune_sync: str = 'keyframe'  # keyframe | end
    strip_frames: int = 6            # revisit frames kept per episode for the strip plots
    bf16: bool = True
    rows: tuple = field(default_factory=lambda: ROWS)
    shard: tuple = (0, 1)            # (index, count): evaluate every count-th seed from index
    condition: str = DEFAULT_CONDITION   # rgbd | rgb-only | drift
    drift: DriftConfig = field(default_factory=DriftConfig)   # seed + episode seed draws it
    # The episodic expert reads keyframes near the target (the world model's default).
    episodic_retrieval: bool = field(
        default_factory=lambda: WorldModelConfig().episodic_retrieval)
    # Trust only the memory seen within this many metres travelled (WorldModelConfig).
    trust_travel_m: float = 0.0

    def __post_init__(self):
        if self.condition not in CONDITIONS:
            raise ValueError(f'condition must be one of {CONDITIONS}, got {self.condition!r}')
        spatial_rows = [row.name for row in self.rows if 'spatial' in row.experts]
        if self.condition == 'rgb-only' and spatial_rows:
            raise ValueError(f'rgb-only observes no depth, so the spatial memory is empty: '
                             f'rows {spatial_rows} cannot be evaluated (choose rows without '
                             f'the spatial expert)')
        if self.finetune_sync not in FINETUNE_SYNC:
            raise ValueError(f'finetune_sync must be one of {FINETUNE_SYNC}, got '
                             f'{self.finetune_sync!r}')
        if not 0 <= self.shard[0] < self.shard[1]:
            raise ValueError(f'shard index must be in [0, count), got {self.shard}')
        if self.episodes < 1 or not self.rows:
            raise ValueError('at least one episode and one row are needed')
        needed = (self.context + self.horizon - 1) * self.frame_skip + 1
        if needed > self.episode_steps:
            raise ValueError(f'{self.context} context + {self.horizon} predicted frames '
                             f'{self.frame_skip} apart need {needed} env steps; episodes have '
                             f'{self.episode_steps}')

    @property
    def seeds(self):
        return list(range(self.seed_start, self.seed_start + self.episodes))

    @property
    def shard_seeds(self):
        """Return the seeds this process evaluates (all of them unless sharded)."""
        index, count = self.shard
        return self.seeds[index::count]

    @property
    def report_dir(self):
        """Where this condition's report goes: ``out_dir``, or a folder per other condition."""
        if self.condition == DEFAULT_CONDITION:
            return Path(self.out_dir)
        return Path(self.out_dir) / self.condition

    @property
    def episode_dir(self):
        """Where the per-episode results go."""
        return self.report_dir / 'per_episode'

    @property
    def cache(self):
        """Where the generated episodes go."""
        return Path(self.cache_dir) if self.cache_dir else Path(self.out_dir) / 'episodes'

    def signature(self):
        """Return the settings a finished episode's result must match to be reused."""
        return {'format': RESULT_FORMAT, 'checkpoint': str(self.checkpoint),
                'context': self.context, 'horizon': self.horizon,
                'frame_skip': self.frame_skip, 'maze_size': self.maze_size,
                'episode_steps': self.episode_steps, 'sampler_steps': self.sampler_steps,
                'seed': self.seed, 'finetune_sync': self.finetune_sync, 'bf16': self.bf16,
                'rows': [asdict(row) for row in self.rows], 'world_model': world_model_settings(),
                **self.condition_signature(), **self.retrieval_signature(),
                **({'trust_travel_m': self.trust_travel_m} if self.trust_travel_m else {})}

    def retrieval_signature(self):
        """Return the retrieval settings when it is on; none when off (as results before it)."""
        if not self.episodic_retrieval:
            return {}
        return {'episodic_retrieval': asdict(WorldModelConfig().retrieval)}

    def condition_signature(self):
        """Return the condition's settings; none for rgbd, whose results predate conditions."""
        if self.condition == DEFAULT_CONDITION:
            return {}
        signature = {'condition': self.condition}
        if self.condition == 'drift':
            signature['drift'] = asdict(self.drift)
        return signature

    def observed_poses(self, episode, seed):
        """Return the episode's poses as the world model gets them (drifted under ``drift``)."""
        if self.condition != 'drift':
            return episode.pose
        # Each episode's robot drifts its own way: its seed offsets the drift seed.
        return drift_trajectory(episode.pose, replace(self.drift, seed=self.drift.seed + seed))

    def observes_depth(self):
        return self.condition != 'rgb-only'


# How the finetuning worker thread is scheduled, not what it computes: left out of the
# signature, so results from before these settings existed stay valid.
FINETUNE_SCHEDULING = ('torch_threads', 'thread_nice')


def world_model_settings():
    """Return the expert weights and finetuning settings every row is predicted with."""
    defaults = WorldModelConfig()
    finetune = {key: value for key, value in defaults.finetune.to_dict().items()
                if key not in FINETUNE_SCHEDULING}
    return {'weights': defaults.weights, 'finetune': finetune}


def result_path(config, seed):
    return config.episode_dir / f'seed_{seed:06d}.json'


def strips_path(config, seed):
    return config.episode_dir / f'seed_{seed:06d}_strips.npz'


def load_result(config, seed):
    """Return the finished result of ``seed`` when it matches the settings, else None."""
    path = result_path(config, seed)
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if result.get('signature') != json.loads(json.dumps(config.signature())):
        log.warning('%s was computed with other settings; evaluating it again', path.name)
        return None
    return result


def make_world_model(config):
    experts = sorted({name for row in config.rows for name in row.experts},
                     key=EXPERT_NAMES.index)
    return WorldModel(WorldModelConfig(
        checkpoint=str(config.checkpoint), device=config.device,
        sampler_steps=config.sampler_steps, experts=tuple(experts), bf16=config.bf16,
        seed=config.seed, context_interval_s=0.0,
        episodic_retrieval=config.episodic_retrieval, trust_travel_m=config.trust_travel_m))


def observe_context(model, episode, split, finetune_sync, poses=None, use_depth=True):
    """
    Feed the observed frames to ``model``; return what the memories hold afterwards.

    ``poses`` (default the episode's) are the poses the model is told; ``use_depth=False``
    withholds the depth images.
    """
    started = time.perf_counter()
    poses = episode.pose if poses is None else poses
    uses_finetuning = 'episodic' in model.config.experts and model.config.finetune_on_observe
    for index in split.observed:
        depth = episode.depth[index] if episode.depth is not None and use_depth else None
        admitted = model.observe(Frame(rgb=episode.rgb[index], pose=poses[index],
                                       K=episode.K, stamp=int(episode.stamp[index]),
                                       depth=depth))
        if admitted and uses_finetuning and finetune_sync == 'keyframe':
            model.finetuner.wait_idle()
    if uses_finetuning:
        model.finetuner.wait_idle()
    return {'seconds': time.perf_counter() - started, 'frames': len(split.observed),
            'keyframes': len(model.episodic), 'points': len(model.spatial),
            'finetune_steps': model.finetuner.steps_done,
            'finetune_cpu_seconds': model.finetuner.cpu_seconds,
            'finetune_last_loss': model.finetuner.last_loss}


def predict_row(model, row, history_rgb, history_poses, target_poses, config):
    if row.kind == COMPOSED:
        return model.imagine(target_poses, experts=row.experts, mode=row.mode,
                             steps=config.sampler_steps, seed=config.seed).images[0]
    return imagine_sliding_window(model, history_rgb, history_poses, target_poses,
                                  steps=config.sampler_steps, seed=config.seed)


def queries_per_step(model, row):
    if row.kind == COMPOSED:
        return len(model.composition(row.experts, row.mode).queries())
    return len(STRIDES)


def strip_positions(revisit, count):
    """Up to ``count`` horizon positions of revisit frames, spread over the horizon."""
    positions = np.flatnonzero(revisit)
    if len(positions) <= count:
        return positions
    return positions[np.linspace(0, len(positions) - 1, count).round().astype(int)]


def evaluate_episode(config, episode, seed):
    """Evaluate every row on one episode; return (result dict, strips dict of arrays)."""
    started = time.perf_counter()
    split = split_episode(episode, config.context, config.horizon, config.frame_skip)
    model = make_world_model(config)
    try:
        size = model.size
        poses = config.observed_poses(episode, seed)
        observed = observe_context(model, episode, split, config.finetune_sync, poses,
                                   config.observes_depth())
        history_rgb = np.stack([to_model_frame(episode.rgb[i], size) for i in split.observed])
        history_poses = poses[split.observed]
        truth = np.stack([to_model_frame(episode.rgb[i], size) for i in split.targets])
        target_poses = poses[split.targets]
        # Warm-up (first-call allocations, loading the adapters) outside the timings.
        model.imagine(target_poses[:1], experts=model.config.experts, steps=1)
        rows, predictions = {}, {}
        for row in config.rows:
            tick = time.perf_counter()
            images = predict_row(model, row, history_rgb, history_poses, target_poses, config)
            ms = 1000.0 * (time.perf_counter() - tick) / config.horizon
            predictions[row.name] = images
            rows[row.name] = dict(metrics.frame_metrics(truth, images), ms_per_frame=ms,
                                  queries_per_step=queries_per_step(model, row))
    finally:
        model.close()
    positions = strip_positions(split.revisit, config.strip_frames)
    strips = {'positions': positions, 'truth': truth[positions],
              'predictions': np.stack([predictions[row.name][positions]
                                       for row in config.rows])}
    result = {'seed': seed, 'signature': config.signature(),
              'targets': split.targets.tolist(), 'revisit': split.revisit.tolist(),
              'has_revisit_labels': split.has_labels, 'observed': observed, 'rows': rows,
              'row_order': [row.name for row in config.rows],
              'wall_seconds': time.perf_counter() - started}
    return result, strips


def save_episode_result(config, seed, result, strips):
    """Write the strips, then the JSON: a result file exists only once both are whole."""
    atomic_write(strips_path(config, seed), lambda f: np.savez_compressed(f, **strips), 'wb')
    atomic_write(result_path(config, seed), lambda f: json.dump(result, f, indent=1), 'w')


def load_strips(config, seed):
    with np.load(strips_path(config, seed), allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def run_evaluation(config, episode_source=None, progress=True):
    """
    Evaluate every seed not finished yet; return the finished results, in seed order.

    ``episode_source(seed)`` returns an Episode; by default a MazeEpisodeCache in
    ``config.cache`` generates Memory Maze episodes there once.
    """
    if episode_source is None:
        episode_source = MazeEpisodeCache(config.cache, GenerationConfig(
            maze_size=config.maze_size, steps=config.episode_steps))
    results = {}
    todo = []
    for seed in config.shard_seeds:
        finished = load_result(config, seed)
        if finished is None:
            todo.append(seed)
        else:
            results[seed] = finished
    bar = tqdm(total=len(config.shard_seeds), initial=len(results), unit='episode', desc='eval',
               disable=not progress)
    try:
        for seed in todo:
            bar.set_postfix(seed=seed, stage='episode')
            episode = episode_source(seed)
            bar.set_postfix(seed=seed, stage='model')
            result, strips = evaluate_episode(config, episode, seed)
            save_episode_result(config, seed, result, strips)
            results[seed] = json.loads(json.dumps(result))   # as a rerun would load it
            bar.update()
            bar.set_postfix(seed=seed, s=f'{result["wall_seconds"]:.0f}')
    finally:
        bar.close()
    return [results[seed] for seed in sorted(results)]


def finished_results(config):
    """Return the results already on disk for the configured seeds (a report mid-run)."""
    found = (load_result(config, seed) for seed in config.seeds)
    return [result for result in found if result is not None]
