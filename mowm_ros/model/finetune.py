"""
Test-time finetuning of the episodic expert: LoRA adapters trained on the robot's keyframes.

The finetuner owns a private copy of the network with adapters and trains it on a worker
thread as keyframes arrive (``steps_per_keyframe`` gradient steps each, every batch mixing the
newest keyframes with replayed earlier ones so older places are not forgotten). After each
round it publishes a whole, detached copy of the adapter weights; samplers only ever load such
complete sets, never weights that are being updated.
"""

import copy
from dataclasses import asdict, dataclass
import logging
import threading
import time

from mowm_ros import geometry
from mowm_ros.model.denoiser import Conditioning, Flags
from mowm_ros.model.diffusion import Diffusion
from mowm_ros.model.frames import images_to_tensor, render_to_tensor
from mowm_ros.model.lora import adapter_parameters, adapter_state, add_lora, load_adapter_state
from mowm_ros.model.threads import background_thread_setup
from mowm_ros.model.training import diffusion_loss, dropout_flags
import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass
class FinetuneConfig:
    rank: int = 16
    alpha: float = 16.0
    learning_rate: float = 5e-4
    steps_per_keyframe: float = 1.0  # gradient steps owed per admitted keyframe (may be < 1)
    batch_size: int = 8
    newest_per_batch: int = 1     # the newest keyframes in every batch; the rest are replayed
    context_dropout: float = 0.5  # share of samples trained with the recent context dropped
    render_dropout: float = 0.5   # share of samples with a memory view trained without it
    max_pending_steps: int = 64   # cap on the backlog when keyframes arrive faster than steps
    bf16: bool = True
    seed: int = 0
    # The worker thread runs single-threaded and nicer than the sampler, so it never gives
    # the process a second OpenMP team (which slows the sampler, see model/threads.py) and
    # takes the CPU the sampler leaves. More threads: a faster step, a slower sampler.
    torch_threads: int = 1
    thread_nice: int = 10         # niceness added to the worker thread (Linux); 0 = none

    def __post_init__(self):
        if self.rank < 1 or self.batch_size < 1 or not self.steps_per_keyframe >= 0:
            raise ValueError('rank and batch_size must be >= 1, steps_per_keyframe >= 0')
        if self.torch_threads < 1 or self.thread_nice < 0:
            raise ValueError(f'torch_threads must be >= 1 and thread_nice >= 0, got '
                             f'{self.torch_threads}, {self.thread_nice}')
        for name in ('context_dropout', 'render_dropout'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {getattr(self, name)}')

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AdapterSet:
    """A complete, immutable set of adapter weights and the keyframe count it has seen."""

    version: int
    keyframes_seen: int
    weights: dict


@dataclass
class KeyframeBatch:
    """
    Keyframes to learn from: rgb (M, H, W, 3) uint8 and poses (M, 4, 4), oldest first.

    With depth, their memory views: the spatial memory's render at each keyframe's pose from
    before it was fused (view_rgb uint8 (M, H, W, 3), view_mask bool (M, H, W), has_view).
    """

    rgb: np.ndarray
    poses: np.ndarray
    view_rgb: np.ndarray = None
    view_mask: np.ndarray = None
    has_view: np.ndarray = None


def keyframe_training_inputs(keyframes, indices, context_frames, origin=None) -> tuple:
    """
    Build (target, context, motions, target_pose) tensors for keyframes ``indices``.

    The context of keyframe j is the ``context_frames`` keyframes before it (the first one
    repeated at the start of the buffer), with the motions between them and to j.
    """
    images = images_to_tensor(keyframes.rgb)
    context_index = np.clip(np.asarray(indices)[:, None] - np.arange(context_frames, 0, -1),
                            0, None)
    chain = np.concatenate([context_index, np.asarray(indices)[:, None]], axis=1)
    motions = geometry.relative_motion(keyframes.poses[chain[:, :-1]],
                                       keyframes.poses[chain[:, 1:]])
    target_pose = geometry.absolute_pose_features(keyframes.poses[indices], origin)
    return (images[indices], images[context_index],
            torch.from_numpy(motions).float(), torch.from_numpy(target_pose).float())


def keyframe_memory_views(keyframes, indices) -> tuple:
    """Return (render (N, 4, H, W) in the network's layout, has_view (N,)) for ``indices``."""
    return (render_to_tensor(keyframes.view_rgb[indices], keyframes.view_mask[indices]),
            torch.from_numpy(keyframes.has_view[indices]))


class EpisodicFinetuner:
    """Trains adapters on a worker thread; ``latest()`` returns the newest complete set."""

    def __init__(self, network, diffusion_config, config=None, origin=None) -> None:
        self.config = config or FinetuneConfig()
        self.network = copy.deepcopy(network).float().train()
        for param in self.network.parameters():
            param.requires_grad_(False)
        # The adapters' random initial weights come from the seed, not the global RNG: the
        # same keyframes and settings then give the same adapters in every process.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            add_lora(self.network, self.config.rank, self.config.alpha)
        self.params = adapter_parameters(self.network)
        for param in self.params.values():
            param.requires_grad_(True)
        self.initial_state = adapter_state(self.network)
        self.optimizer = torch.optim.AdamW(self.params.values(), lr=self.config.learning_rate,
                                           weight_decay=0.0)
        self.diffusion = Diffusion(diffusion_config)
        self.context_frames = network.config.context_frames
        self.origin = origin
        self.device = next(network.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(self.config.seed)
        self.rng = np.random.default_rng(self.config.seed)
        self._published = AdapterSet(0, 0, adapter_state(self.network))
        self._lock = threading.Condition()
        self._train_lock = threading.Lock()  # held while the adapters are being changed
        self._keyframes = None
        self._pending_steps = 0.0
        self._generation = 0  # bumped by reset/load: work picked up before is dropped
        self._stop = False
        self._thread = None
        self.steps_done = 0
        self.last_loss = float('nan')
        # CPU time of the threads that ran train_step (time.thread_time: with torch_threads
        # 1, the default, all of a step's work runs on the calling thread).
        self.cpu_seconds = 0.0

    # --- the sampler's side -------------------------------------------------------------
    def latest(self) -> AdapterSet:
        return self._published

    @property
    def pending_steps(self) -> int:
        """Whole gradient steps owed to the keyframes submitted so far."""
        with self._lock:
            return int(self._pending_steps)

    # --- feeding keyframes --------------------------------------------------------------
    def submit(self, keyframes, new_keyframes=1) -> None:
        """Hand over the whole buffer (oldest first) after ``new_keyframes`` were admitted."""
        with self._lock:
            self._keyframes = keyframes
            self._pending_steps = min(self.config.max_pending_steps,
                                      self._pending_steps
                                      + new_keyframes * self.config.steps_per_keyframe)
            self._lock.notify()

    def start(self) -> None:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._run, name='episodic-finetune',
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout=10.0) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_idle(self, timeout=None) -> bool:
        """Block until every whole step owed has run (for tests and offline evaluation)."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending_steps < 1, timeout)

    def _run(self):
        background_thread_setup(self.config.torch_threads, self.config.thread_nice)
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._stop or self._pending_steps >= 1)
                if self._stop:
                    return
                keyframes, generation = self._keyframes, self._generation
            try:
                with self._train_lock:
                    if generation == self._generation and keyframes is not None:
                        self.last_loss = self.train_step(keyframes)
                        self.publish(len(keyframes.rgb))
            except Exception:  # noqa: B902 - a failed step must not kill the worker
                log.exception('episodic finetuning step failed; adapters left unchanged')
            with self._lock:
                self._pending_steps = max(0.0, self._pending_steps - 1)
                self._lock.notify_all()

    # --- the work -----------------------------------------------------------------------
    def choose_indices(self, count) -> np.ndarray:
        newest = list(range(max(0, count - self.config.newest_per_batch), count))
        replay = self.config.batch_size - len(newest)
        older = self.rng.integers(0, count, size=replay) if replay > 0 else []
        return np.array(newest + list(older), dtype=np.int64)

    def train_step(self, keyframes) -> float:
        """Run one AdamW step of the diffusion loss on the keyframes; return the loss."""
        started = time.thread_time()
        indices = self.choose_indices(len(keyframes.rgb))
        target, context, motions, target_pose = (
            t.to(self.device) for t in keyframe_training_inputs(
                keyframes, indices, self.context_frames, self.origin))
        n = len(indices)
        size = target.shape[-1]
        context_visible = dropout_flags(n, self.config.context_dropout, self.device,
                                        self.generator)
        render = torch.zeros(n, 4, size, size, device=self.device)
        render_visible = torch.zeros(n, device=self.device)
        if keyframes.has_view is not None and keyframes.has_view[indices].any():
            # The memory view the keyframe was taken with, shown to a share of the batch: the
            # adapters learn the place both with the render beside them and without it.
            render, has_view = (v.to(self.device) for v in keyframe_memory_views(
                keyframes, indices))
            render_visible = has_view.float() * dropout_flags(
                n, self.config.render_dropout, self.device, self.generator)
        # Adapters on; the render only where the keyframe has a memory view.
        flags = Flags(context_visible=context_visible, render_visible=render_visible,
                      adapter_scale=torch.ones(n, device=self.device))
        cond = Conditioning(context=context, motions=motions, target_pose=target_pose,
                            render=render)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16):
            loss = diffusion_loss(self.network, self.diffusion, target, cond, flags,
                                  self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        loss = loss.item()
        self.steps_done += 1
        self.cpu_seconds += time.thread_time() - started
        return loss

    def publish(self, keyframes_seen) -> None:
        self._published = AdapterSet(self._published.version + 1, keyframes_seen,
                                     adapter_state(self.network))

    def reset(self) -> None:
        """Forget everything learnt: initial adapters, fresh optimizer, nothing pending."""
        with self._lock:
            self._pending_steps = 0.0
            self._keyframes = None
            self._generation += 1
            self._lock.notify_all()
        with self._train_lock:
            load_adapter_state(self.network, self.initial_state)
            self.optimizer = torch.optim.AdamW(self.params.values(),
                                               lr=self.config.learning_rate, weight_decay=0.0)
            self._published = AdapterSet(self._published.version + 1, 0,
                                         adapter_state(self.network))

    def load(self, weights, keyframes_seen=0) -> None:
        """Restore adapters saved with the memory (a complete set) and publish them."""
        with self._lock:
            self._generation += 1
        with self._train_lock:
            load_adapter_state(self.network, weights)
            self._published = AdapterSet(self._published.version + 1, keyframes_seen,
                                         adapter_state(self.network))
