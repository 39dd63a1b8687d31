"""
WorldModel: remember what the camera has seen and predict what it will see along a motion.

``observe(frame)`` integrates the frame into the spatial memory, keeps the short-term context
(the last K model frames, spaced ``context_interval_s`` apart) and admits keyframes to the
episodic buffer, which schedules test-time finetuning of the episodic expert on a worker
thread. ``imagine(poses)`` predicts the frames seen at a sequence of future camera poses,
composing the experts at every sampler step and feeding each prediction back as context.

A rollout predicts from one moment: ``rollout_state()`` takes the short-term context and a
frozen view of the spatial memory together (observation holds the same lock while it adds a
frame to both), and everything the rollout renders comes from that view, whatever is observed
while it runs.
"""

from collections import deque
from dataclasses import asdict, dataclass, field, replace
import logging
from pathlib import Path
import threading

from mowm_ros import geometry
from mowm_ros.data.resize import model_intrinsics, to_model_frame
from mowm_ros.device import check_device
from mowm_ros.memory.episodic import EpisodicBuffer, EpisodicBufferConfig
from mowm_ros.memory.retrieval import nearest_keyframes, RetrievalConfig
from mowm_ros.memory.spatial import SpatialMemory, SpatialMemoryConfig
from mowm_ros.memory.store import MemoryStore, Snapshot
from mowm_ros.memory.travel import TravelLog
from mowm_ros.model import checkpoint
from mowm_ros.model.compiled import check_compile_mode
from mowm_ros.model.composition import (Composition, expert_set, recall_composition,
                                        sample_composed)
from mowm_ros.model.denoiser import Conditioning
from mowm_ros.model.diffusion import Diffusion
from mowm_ros.model.experts import (DEFAULT_WEIGHTS, DENOISER, DenoiserEvaluator, EXPERT_NAMES,
                                    store_frozen_weights_in)
from mowm_ros.model.finetune import EpisodicFinetuner, FinetuneConfig, KeyframeBatch
from mowm_ros.model.frames import images_to_tensor, render_to_tensor, tensor_to_images
from mowm_ros.model.lora import add_lora, load_adapter_state
from mowm_ros.model.threads import sampler_threads, use_threads
import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass
class Frame:
    """One camera observation (see the data contract in DESIGN.md)."""

    rgb: np.ndarray                 # uint8 (H, W, 3)
    pose: np.ndarray                # (4, 4) world <- camera optical
    K: np.ndarray                   # (3, 3)
    stamp: int                      # nanoseconds
    depth: np.ndarray = None        # float32 (H, W) metres, NaN/0 invalid

    def validate(self) -> None:
        """Raise ValueError naming the first problem; nothing is stored before this passes."""
        rgb = np.asarray(self.rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f'rgb must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}')
        if min(rgb.shape[:2]) < 8:
            raise ValueError(f'rgb of {rgb.shape[1]}x{rgb.shape[0]} is too small')
        if self.depth is not None and np.shape(self.depth) != rgb.shape[:2]:
            raise ValueError(f'depth {np.shape(self.depth)} does not match rgb '
                             f'{rgb.shape[:2]}')
        geometry.check_pose(self.pose, 'pose')
        geometry.check_intrinsics(self.K, 'K')
        if not isinstance(self.stamp, (int, np.integer)) or self.stamp < 0:
            raise ValueError(f'stamp must be a non-negative integer of nanoseconds, '
                             f'got {self.stamp!r}')


@dataclass
class WorldModelConfig:
    checkpoint: str = ''                 # '' = the checkpoint shipped with the package
    device: str = 'auto'                 # auto | cpu | cuda | cuda:N
    sampler_steps: int = 4
    experts: tuple = EXPERT_NAMES
    weights: dict = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    composition: str = 'contrastive'     # contrastive | naive
    episodic_sees_recent_context: bool = True
    # The episodic expert also reads the keyframes taken nearest each target pose
    # (memory/retrieval.py) in place of the recent frames, where they help.
    episodic_retrieval: bool = True
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    # With depth, each keyframe keeps the spatial memory's render at its pose from before it was
    # fused, and the adapters learn the place given that render; beside the spatial expert the
    # episodic term is then v(render, adapters) - v(render, frozen) (model/experts.py).
    episodic_memory_view: bool = True
    context_interval_s: float = 0.5      # spacing of short-term context frames
    # With drifting odometry: render the spatial memory and retrieve keyframes only from what
    # was seen within the last this many metres travelled (memory/travel.py); 0: all of it.
    trust_travel_m: float = 0.0
    bf16: bool = True
    compile_mode: str = ''               # '' eager, or a torch.compile mode (model/compiled.py)
    torch_threads: int = 0               # sampler threads; 0: the CPUs the finetuner leaves
    seed: int = 0
    finetune_on_observe: bool = True
    spatial: SpatialMemoryConfig = None  # None: matched to how the checkpoint was trained
    episodic: EpisodicBufferConfig = field(default_factory=EpisodicBufferConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def __post_init__(self):
        self.experts = tuple(self.experts)
        unknown = set(self.experts) - set(EXPERT_NAMES)
        if unknown or 'short_term' not in self.experts:
            raise ValueError(f'experts must include short_term and be among {EXPERT_NAMES}, got '
                             f'{self.experts}')
        check_device(self.device)
        if self.sampler_steps < 1:
            raise ValueError(f'sampler_steps must be at least 1, got {self.sampler_steps}')
        check_compile_mode(self.compile_mode)
        if self.context_interval_s < 0:
            raise ValueError('context_interval_s must be >= 0')
        if self.torch_threads < 0:
            raise ValueError(f'torch_threads must be >= 0 (0: automatic), got '
                             f'{self.torch_threads}')
        if not (np.isfinite(self.trust_travel_m) and self.trust_travel_m >= 0):
            raise ValueError(f'trust_travel_m must be finite and >= 0 (0: trust all), got '
                             f'{self.trust_travel_m}')

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(name: str) -> torch.device:
    """Return the torch device of a device name; a CUDA device this machine lacks is refused."""
    check_device(name)
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device "{name}" requested but CUDA is not available')
    if device.type == 'cuda' and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f'device "{name}" requested but this machine has '
                         f'{torch.cuda.device_count()} CUDA devices')
    return device


def spatial_config_for(checkpoint_config) -> SpatialMemoryConfig:
    """Spatial memory settings that render like the training data the checkpoint saw."""
    dataset = checkpoint_config.get('dataset')
    if not dataset:
        return SpatialMemoryConfig()
    cloud, render = dataset.get('cloud', {}), dataset.get('render', {})
    defaults = SpatialMemoryConfig()
    return SpatialMemoryConfig(
        voxel_size=cloud.get('voxel', defaults.voxel_size),
        max_depth=cloud.get('max_depth', defaults.max_depth),
        render_point_size=render.get('point_size', defaults.render_point_size),
        render_max_radius=render.get('max_radius', defaults.render_max_radius),
        render_far=render.get('max_range', defaults.render_far))


@dataclass
class RolloutState:
    """What a rollout predicts from, taken at one moment by ``WorldModel.rollout_state``."""

    context: list           # [(model rgb, camera pose, stamp)], oldest first, at least one
    K: np.ndarray           # model intrinsics
    spatial: object         # memory.spatial.SpatialView, or None when nothing renders
    seen_after: int = None  # trust only memories from this stamp on (ns); None: all of them

    @property
    def stamp(self) -> int:
        """Stamp (ns) of the newest frame the state holds: nothing newer went into it."""
        return self.context[-1][2]


@dataclass
class Retrievable:
    """What a rollout may retrieve: keyframes up to its moment, and its newest observed pose."""

    batch: KeyframeBatch
    newest_pose: np.ndarray


@dataclass
class Imagination:
    """Predicted frames along one or more paths: images (B, H, S, S, 3) uint8 and poses."""

    images: np.ndarray
    poses: np.ndarray
    adapter_version: int
    intrinsics: np.ndarray
    context_stamp: int = None   # stamp of the newest observed frame the prediction used


class WorldModel:

    def __init__(self, config=None) -> None:
        self.config = config = config or WorldModelConfig()
        self.device = resolve_device(config.device)
        # Sampling runs on this thread count whichever thread calls it; by default the cores
        # the finetuning thread leaves free (it sets its own count; see model/threads.py).
        finetuning = config.finetune_on_observe and 'episodic' in config.experts
        self.torch_threads = sampler_threads(
            config.torch_threads, config.finetune.torch_threads if finetuning else 0)
        directory = config.checkpoint or checkpoint.default_checkpoint_dir()
        network, diffusion_config, self.checkpoint_config = checkpoint.load_checkpoint(
            directory, device=self.device)
        self.checkpoint_dir = directory
        network.eval().requires_grad_(False)
        self.size = network.config.image_size
        self.context_frames = network.config.context_frames
        self.diffusion = Diffusion(diffusion_config)
        self.finetuner = EpisodicFinetuner(network, diffusion_config, config.finetune)
        add_lora(network, config.finetune.rank, config.finetune.alpha)
        self.network = network.to(self.device)
        if config.bf16:
            store_frozen_weights_in(self.network, torch.bfloat16)
        self.loaded_adapter_version = -1
        self.evaluators = {DENOISER: DenoiserEvaluator(
            self.network, torch.bfloat16 if config.bf16 else None, config.compile_mode)}
        if config.spatial is None:
            config.spatial = spatial_config_for(self.checkpoint_config)
        self.spatial = SpatialMemory(config.spatial)
        if config.episodic.image_size != self.size:
            config.episodic = replace(config.episodic, image_size=self.size)
        self.episodic = EpisodicBuffer(config.episodic)
        self._context = deque(maxlen=self.context_frames)   # (model rgb uint8, pose, stamp)
        # Held while a frame enters the memory and context, and while a rollout takes both.
        self._state_lock = threading.Lock()
        self._sample_lock = threading.Lock()
        self.model_K = None
        self.frames_observed = 0
        # Distance travelled, kept only when memory is trusted over recent travel alone.
        self._travel = TravelLog(config.trust_travel_m) if config.trust_travel_m > 0 else None
        if config.finetune_on_observe and 'episodic' in config.experts:
            self.finetuner.start()

    # --- memory ------------------------------------------------------------------------
    def observe(self, frame) -> bool:
        """Validate and store one frame; return whether it became an episodic keyframe."""
        frame.validate()
        height, width = frame.rgb.shape[:2]
        model_rgb = to_model_frame(frame.rgb, self.size)
        model_K = model_intrinsics(frame.K, width, height, self.size)
        with self._state_lock:
            last_stamp = self._context[-1][2] if self._context else None
            if last_stamp is not None and frame.stamp < last_stamp:
                raise ValueError(f'stamp {frame.stamp} goes backwards (last {last_stamp})')
            view = None
            if frame.depth is not None and self._learns_memory_view and \
                    self.episodic.would_admit(frame.pose, int(frame.stamp)):
                view = self.spatial.render(frame.pose, model_K, self.size, self.size,
                                           seen_after=self._seen_after())
                view = (view.rgb, view.mask)
            if frame.depth is not None:
                self.spatial.integrate(frame.rgb, np.asarray(frame.depth, np.float32),
                                       frame.pose, frame.K, int(frame.stamp))
            self.model_K = model_K
            if self._travel is not None:
                self._travel.add(frame.pose, frame.stamp)
            interval = int(self.config.context_interval_s * 1e9)
            if last_stamp is None or frame.stamp - last_stamp >= interval:
                self._context.append((model_rgb, np.array(frame.pose), int(frame.stamp)))
        self.frames_observed += 1
        admitted = self.episodic.add(model_rgb, frame.pose, int(frame.stamp), view)
        if admitted and 'episodic' in self.config.experts and self.config.finetune_on_observe:
            self.finetuner.submit(self.keyframes(), new_keyframes=1)
        return admitted

    @property
    def _learns_memory_view(self) -> bool:
        experts = self.config.experts
        return self.config.episodic_memory_view and 'episodic' in experts and \
            'spatial' in experts

    def keyframes(self) -> KeyframeBatch:
        arrays = self.episodic.snapshot()
        return KeyframeBatch(rgb=arrays.rgb, poses=arrays.pose, view_rgb=arrays.view_rgb,
                             view_mask=arrays.view_mask, has_view=arrays.has_view)

    @property
    def context_ready(self) -> bool:
        with self._state_lock:
            return len(self._context) > 0

    def rollout_state(self, render=True) -> RolloutState:
        """
        Take the short-term context and (``render``) a frozen spatial memory view at once.

        Observation waits only while the view is copied; the rollout then renders from the
        copy. Raises RuntimeError before any frame was observed.
        """
        with self._state_lock:
            if not self._context:
                raise RuntimeError('a rollout needs at least one observed frame')
            return RolloutState(list(self._context), self.model_K,
                                self.spatial.view() if render else None, self._seen_after())

    def _seen_after(self):
        """Stamp from which memories are trusted (``trust_travel_m``); None: all of them."""
        if self._travel is None:
            return None
        return self._travel.stamp_within(self.config.trust_travel_m)

    def reset(self) -> None:
        """Forget everything observed: memories, context and finetuned adapters."""
        self.finetuner.reset()
        with self._state_lock:
            self.spatial.reset()
            self._context.clear()
            if self._travel is not None:
                self._travel.reset()
        self.episodic.reset()
        self.frames_observed = 0

    def close(self) -> None:
        self.finetuner.stop()

    # --- prediction --------------------------------------------------------------------
    def _sync_adapters(self):
        """Load the newest complete adapter set (between rollouts, never during one)."""
        adapters = self.finetuner.latest()
        if adapters.version != self.loaded_adapter_version:
            load_adapter_state(self.network, adapters.weights)
            self.loaded_adapter_version = adapters.version
        return adapters.version

    def composition(self, experts=None, mode=None, weights=None) -> Composition:
        return Composition(expert_set(experts or self.config.experts,
                                      weights or self.config.weights,
                                      self.config.episodic_sees_recent_context,
                                      self.config.episodic_retrieval,
                                      self.config.episodic_memory_view),
                           mode or self.config.composition)

    @torch.no_grad()
    def imagine(self, poses, experts=None, mode=None, steps=None, seed=None,
                state=None) -> Imagination:
        """
        Predict the frames seen from camera ``poses``: (H, 4, 4) or a batch of paths (B, H, 4, 4).

        The rollout is autoregressive: each prediction joins the short-term context of the
        next. It predicts from ``state`` (a RolloutState; by default one taken now). Returns
        an Imagination with images (B, H, size, size, 3) uint8.
        """
        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim == 3:
            poses = poses[None]
        if poses.ndim != 4 or poses.shape[2:] != (4, 4) or poses.shape[1] == 0:
            raise ValueError(f'poses must be (H, 4, 4) or (B, H, 4, 4), got {poses.shape}')
        if not np.all(np.isfinite(poses)):
            raise ValueError('poses contain NaN or infinite values')
        composition = self.composition(experts, mode)
        uses_render = any(q.render for q in composition.queries())
        state = self._state_for(state, uses_render, 'imagine()')
        context, K = state.context, state.K
        keyframes = (Retrievable(self._keyframes_until(state.stamp, state.seen_after),
                                 context[-1][1])
                     if any(q.retrieved for q in composition.queries()) else None)
        with self._sample_lock:
            use_threads(self.torch_threads)
            version = self._sync_adapters()
            batch, horizon = poses.shape[:2]
            images = [np.stack([c[0] for c in context])] * batch
            frame_poses = [np.stack([c[1] for c in context])] * batch
            generator = torch.Generator(device=self.device).manual_seed(
                self.config.seed if seed is None else seed)
            predictions = []
            for step in range(horizon):
                cond = self._conditioning(images, frame_poses, poses[:, step], K,
                                          state.spatial if uses_render else None, keyframes,
                                          state.seen_after)
                frames = sample_composed(composition, self.evaluators, self.diffusion, cond,
                                         steps or self.config.sampler_steps, generator)
                frames = tensor_to_images(frames)
                predictions.append(frames)
                images = [np.concatenate([images[b], frames[b:b + 1]]) for b in range(batch)]
                frame_poses = [np.concatenate([frame_poses[b], poses[b, step][None]])
                               for b in range(batch)]
        return Imagination(np.stack(predictions, axis=1), poses, version, K, state.stamp)

    def _state_for(self, state, uses_render, what):
        """Return ``state``, or take one now; check it holds the view a render needs."""
        if state is None:
            try:
                return self.rollout_state(render=uses_render)
            except RuntimeError:
                raise RuntimeError(f'{what} needs at least one observed frame') from None
        if uses_render and state.spatial is None:
            raise ValueError('the rollout state has no spatial memory view: take it with '
                             'rollout_state(render=True)')
        return state

    @torch.no_grad()
    def recall(self, poses, experts=None, steps=None, seed=None) -> np.ndarray:
        """
        Predict the view at each camera pose (N, 4, 4) from the memories alone: (N, S, S, 3).

        Far from the robot the recent frames only mislead, so the memory experts among
        ``experts`` are composed over a base without them (``recall_composition``). Every pose
        starts from the same noise, so views of different poses are comparable.
        """
        poses = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
        if not np.all(np.isfinite(poses)):
            raise ValueError('poses contain NaN or infinite values')
        composition = recall_composition(experts or self.config.experts, self.config.weights)
        uses_render = any(q.render for q in composition.queries())
        state = self._state_for(None, uses_render, 'recall()')
        context = state.context
        images, frame_poses = np.stack([c[0] for c in context]), np.stack([c[1] for c in context])
        with self._sample_lock:
            use_threads(self.torch_threads)
            self._sync_adapters()
            generator = torch.Generator(device=self.device).manual_seed(
                self.config.seed if seed is None else seed)
            cond = self._conditioning([images] * len(poses), [frame_poses] * len(poses), poses,
                                      state.K, state.spatial if uses_render else None,
                                      seen_after=state.seen_after)
            frames = sample_composed(composition, self.evaluators, self.diffusion, cond,
                                     steps or self.config.sampler_steps, generator,
                                     shared_noise=True)
        return tensor_to_images(frames)

    def render_memory(self, poses, state=None) -> tuple:
        """
        Render the spatial memory at camera poses (N, 4, 4): (rgb (N, S, S, 3), mask).

        From ``state``'s view (a RolloutState taken with render) when given, else as it is now.
        """
        poses = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
        if state is not None:
            K, memory, seen_after = state.K, state.spatial, state.seen_after
        else:
            with self._state_lock:
                K, memory, seen_after = self.model_K, self.spatial, self._seen_after()
        if K is None or memory is None:
            raise RuntimeError('render_memory() needs at least one observed frame')
        views = [memory.render(pose, K, self.size, self.size, seen_after=seen_after)
                 for pose in poses]
        return (np.stack([view.rgb for view in views]).astype(np.uint8),
                np.stack([view.mask for view in views]).astype(bool))

    def occupancy_grid(self, **options):
        """
        Return the spatial memory's OccupancyGrid (``SpatialMemory.occupancy_grid`` ``options``).

        With ``trust_travel_m`` only what was seen within that travel: older obstacles lie
        elsewhere in a drifting odometry frame.
        """
        with self._state_lock:
            memory, seen_after = self.spatial, self._seen_after()
        return memory.occupancy_grid(seen_after=seen_after, **options)

    def recent_context(self) -> list:
        """Return the short-term context, oldest first: [(model rgb, camera pose, stamp)]."""
        with self._state_lock:
            return list(self._context)

    def restore_recent_context(self, items) -> None:
        """Replace the short-term context with ``items`` from ``recent_context()``."""
        with self._state_lock:
            self._context.clear()
            self._context.extend(items)

    def newest_camera_pose(self) -> np.ndarray | None:
        """Return the camera pose of the newest context frame, or None before any frame."""
        with self._state_lock:
            return np.array(self._context[-1][1]) if self._context else None

    def _keyframes_until(self, stamp, seen_after=None):
        """
        Return the episodic keyframes stamped at or before ``stamp`` (nothing newer).

        With ``seen_after``, only those stamped at or after it (trusted travel).
        """
        arrays = self.episodic.snapshot()
        kept = arrays.stamp <= stamp
        if seen_after is not None:
            kept &= arrays.stamp >= seen_after
        if kept.all():                      # the usual case: no second copy of the images
            return KeyframeBatch(rgb=arrays.rgb, poses=arrays.pose)
        return KeyframeBatch(rgb=arrays.rgb[kept], poses=arrays.pose[kept])

    def _retrieved(self, keyframes, context, motion, target_poses, coverage, newest_pose):
        """
        Per target: the keyframes nearest it and their motions, else the recent ones.

        ``coverage`` (N,) is the share of each target view the spatial render covers.
        """
        retrieved, motions = [], []
        config = self.config.retrieval
        for frames, chain_motion, target, covered in zip(context, motion, target_poses,
                                                         coverage):
            index = (nearest_keyframes(keyframes.poses, target, self.context_frames, config,
                                       newest_pose)
                     if covered < config.max_render_coverage else None)
            if index is None:
                retrieved.append(frames)
                motions.append(chain_motion)
                continue
            chain = np.concatenate([keyframes.poses[index], target[None]])
            retrieved.append(keyframes.rgb[index])
            motions.append(geometry.relative_motion(chain[:-1], chain[1:]))
        return np.stack(retrieved), np.stack(motions)

    def _conditioning(self, images, frame_poses, target_poses, K, spatial, keyframes=None,
                      seen_after=None):
        """
        Build the last K frames of each path (the first repeated if fewer) and motions.

        ``spatial`` (a SpatialView, or None for no render) renders the memory at the targets
        (only points seen at or after ``seen_after``, when given);
        ``keyframes`` (a Retrievable, or None) fills the retrieved context (see
        memory/retrieval.py).
        """
        context, chains = [], []
        for frames, path, target in zip(images, frame_poses, target_poses):
            index = np.clip(np.arange(len(frames) - self.context_frames, len(frames)), 0, None)
            context.append(frames[index])
            chains.append(np.concatenate([path[index], target[None]]))
        chains = np.stack(chains)
        motion = geometry.relative_motion(chains[:, :-1], chains[:, 1:])
        rgb = np.zeros((len(images), self.size, self.size, 3), np.uint8)
        mask = np.zeros((len(images), self.size, self.size), bool)
        if spatial is not None:
            for b, pose in enumerate(target_poses):
                view = spatial.render(pose, K, self.size, self.size, seen_after=seen_after)
                rgb[b], mask[b] = view.rgb, view.mask
        device = self.device
        retrieved = {}
        if keyframes is not None:
            frames, motions = self._retrieved(keyframes.batch, context, motion, target_poses,
                                              mask.mean(axis=(1, 2)), keyframes.newest_pose)
            retrieved = {'retrieved_context': images_to_tensor(frames, device),
                         'retrieved_motions': torch.as_tensor(motions, dtype=torch.float32,
                                                              device=device)}
        return Conditioning(
            context=images_to_tensor(np.stack(context), device),
            motions=torch.as_tensor(motion, dtype=torch.float32, device=device),
            target_pose=torch.as_tensor(geometry.absolute_pose_features(target_poses),
                                        dtype=torch.float32, device=device),
            render=render_to_tensor(rgb, mask, device), **retrieved)

    # --- persistence -------------------------------------------------------------------
    def save(self, directory, keep=2, extra_meta=None) -> Path:
        """
        Snapshot the memories and the finetuned adapters through MemoryStore.

        ``extra_meta`` (JSON-serialisable) is kept in the manifest, e.g. the frame the
        memory is in.
        """
        adapters = self.finetuner.latest()
        return MemoryStore(directory, keep=keep).save(
            self.spatial, self.episodic, adapters.weights,
            {**(extra_meta or {}), 'adapter_keyframes_seen': adapters.keyframes_seen,
             'checkpoint': str(self.checkpoint_dir)})

    def load(self, directory) -> Snapshot | None:
        """Restore the newest valid snapshot; return it (None when there is none)."""
        snapshot = MemoryStore(directory).load()
        if snapshot is None:
            return None
        spatial = snapshot.spatial_memory(self.config.spatial) or SpatialMemory(
            self.config.spatial)
        episodic = snapshot.episodic_buffer(self.config.episodic) or EpisodicBuffer(
            self.config.episodic)
        if snapshot.adapter:
            self.finetuner.load(snapshot.adapter, snapshot.meta.get('adapter_keyframes_seen', 0))
        with self._state_lock:
            self.spatial, self.episodic = spatial, episodic
        return snapshot
