"""
Training of the shared denoiser (short-term and spatial expert in one network).

Context dropout makes the "recent context dropped" prediction meaningful (the short-term
expert's twin, and the episodic expert's finetuning target); render dropout makes "render
blanked" the spatial expert's twin. Runs on one CPU or GPU, or on several through PyTorch DDP
started by ``torchrun`` (gloo on CPU, NCCL on GPU).
"""

from dataclasses import asdict, dataclass, field, fields, is_dataclass
import json
import logging
import math
import os
from pathlib import Path
import time

from mowm_ros.device import check_device
from mowm_ros.model import checkpoint
from mowm_ros.model.denoiser import Conditioning, Denoiser, DenoiserConfig, Flags
from mowm_ros.model.diffusion import Diffusion, DiffusionConfig
from mowm_ros.model.samples import sample_strip
import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm
import yaml

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data_dir: str = 'data/maze9'
    out_dir: str = 'runs/maze64'
    val_fraction: float = 0.1
    steps: int = 20000  # 0 = no step limit (max_minutes ends the run)
    batch_size: int = 32
    learning_rate: float = 2e-4
    weight_decay: float = 1e-3
    warmup_steps: int = 500
    grad_clip: float = 1.0
    context_dropout: float = 0.15
    render_dropout: float = 0.3
    ema_decay: float = 0.999
    bf16: bool = True
    num_workers: int = 2
    seed: int = 0
    log_every: int = 50
    validate_every: int = 1000
    checkpoint_every: int = 1000
    validation_batches: int = 8
    max_minutes: float = 0.0  # stop (resumably) after this long; 0 = no limit
    init_from: str = ''  # checkpoint directory whose weights start a fresh run
    device: str = 'auto'  # auto (a GPU when torch sees one), cpu, cuda or cuda:N
    dataset: dict = field(default_factory=dict)  # options of the episode window dataset
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)

    def __post_init__(self):
        check_device(self.device)

    def to_dict(self) -> dict:
        values = asdict(self)
        values['denoiser'] = self.denoiser.to_dict()
        return values


def load_train_config(path, overrides=None) -> TrainConfig:
    """Read a YAML training config; unknown keys are errors, not silently ignored."""
    values = yaml.safe_load(Path(path).read_text()) or {}
    values.update(overrides or {})
    return train_config_from_dict(values, source=str(path))


def train_config_from_dict(values, source='config') -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f'{source}: unknown training settings {unknown}')
    values = dict(values)
    values['denoiser'] = DenoiserConfig(**values.get('denoiser', {}))
    values['diffusion'] = DiffusionConfig(**values.get('diffusion', {}))
    return TrainConfig(**values)


def batch_to_model_inputs(batch, device) -> tuple:
    """Return (target, Conditioning) from a dataset batch."""
    target = batch['target'].to(device, non_blocking=True)
    render = torch.cat([batch['render_rgb'], batch['render_mask']], dim=1)
    cond = Conditioning(context=batch['context'].to(device, non_blocking=True),
                        motions=batch['motions'].to(device).float(),
                        target_pose=batch['abs_pose'][:, -1].to(device).float(),
                        render=render.to(device, non_blocking=True))
    return target, cond


def diffusion_loss(network, diffusion: Diffusion, target: torch.Tensor, cond: Conditioning,
                   flags: Flags, generator=None) -> torch.Tensor:
    """Return the v-prediction loss of ``network`` on clean ``target`` frames."""
    return diffusion.loss(lambda x_t, logsnr: network(x_t, logsnr, cond, flags), target,
                          generator)


def dropout_flags(batch_size: int, probability: float, device, generator=None) -> torch.Tensor:
    """Return (batch_size,) visibility flags, each 0 with ``probability``, else 1."""
    return (torch.rand(batch_size, device=device, generator=generator) >= probability).float()


def learning_rate_at(step, config) -> float:
    """Linear warm-up, then constant (the schedule of the method's reference configs)."""
    return config.learning_rate * min(1.0, (step + 1) / max(1, config.warmup_steps))


class Distributed:
    """
    Rank, world size and device for a plain run or one started by torchrun.

    ``device`` 'auto' takes this rank's GPU when torch sees one, else the CPU; 'cuda'
    without a GPU is an error, not a silent fall-back.
    """

    def __init__(self, device='auto') -> None:
        self.world_size = int(os.environ.get('WORLD_SIZE', '1'))
        self.rank = int(os.environ.get('RANK', '0'))
        self.local_rank = int(os.environ.get('LOCAL_RANK', '0'))
        if device.startswith('cuda') and not torch.cuda.is_available():
            raise ValueError(f'device {device!r}: torch sees no CUDA device')
        if device == 'cpu' or (device == 'auto' and not torch.cuda.is_available()):
            self.device = torch.device('cpu')
        else:
            index = int(device.partition(':')[2] or self.local_rank)
            self.device = torch.device('cuda', index)
            torch.cuda.set_device(self.device)
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group('nccl' if self.device.type == 'cuda' else 'gloo')

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


class Trainer:

    def __init__(self, config, train_set, val_set) -> None:
        self.config = config
        self.dist = Distributed(config.device)
        self.device = self.dist.device
        torch.manual_seed(config.seed + self.dist.rank)
        self.out_dir = Path(config.out_dir)
        self.diffusion = Diffusion(config.diffusion)
        self.model = Denoiser(config.denoiser).to(self.device)
        self.ema = AveragedModel(self.model, avg_fn=self._ema_average)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.learning_rate,
                                           weight_decay=config.weight_decay)
        self.step = 0
        self.seconds = 0.0   # training time over every fit of this run, resumes included
        self.history = []
        self.train_set, self.val_set = train_set, val_set
        self.sampler = (DistributedSampler(train_set, seed=config.seed)
                        if self.dist.world_size > 1 else None)
        self.loader = DataLoader(train_set, batch_size=config.batch_size,
                                 shuffle=self.sampler is None, sampler=self.sampler,
                                 num_workers=config.num_workers, drop_last=True,
                                 persistent_workers=config.num_workers > 0)
        self.network = (DistributedDataParallel(self.model) if self.dist.world_size > 1
                        else self.model)
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                       enabled=config.bf16)

    def _ema_average(self, averaged, current, num_averaged):
        """EMA whose decay warms up as (1 + n) / (10 + n), so early weights fade quickly."""
        n = float(num_averaged)
        decay = min(self.config.ema_decay, (1.0 + n) / (10.0 + n))
        return decay * averaged + (1.0 - decay) * current

    def initialize_from(self, directory) -> None:
        """Start the network and its EMA from a checkpoint's weights (fresh optimizer)."""
        path = Path(directory) / checkpoint.WEIGHTS_FILE
        state = checkpoint.load_file(str(path))
        checkpoint.load_weights(self.model, state, path)
        checkpoint.load_weights(self.ema.module, state, path)
        log.info('initialized weights from %s', directory)

    def resume(self) -> bool:
        """Continue from out_dir/last when it exists; return whether it did."""
        last = self.out_dir / 'last'
        if not (last / checkpoint.TRAINING_STATE_FILE).exists():
            return False
        record = checkpoint.load_training_state(last, self.model, self.optimizer)
        ema_state = checkpoint.load_file(str(last / checkpoint.WEIGHTS_FILE))
        checkpoint.load_weights(self.ema.module, ema_state, last / checkpoint.WEIGHTS_FILE)
        self.ema.n_averaged.fill_(record.get('ema_updates', self.step))
        self.step = record['step']
        self.seconds = float(record.get('seconds', 0.0))
        self.history = record.get('history', [])
        rng = record['extra_tensors'].get(f'rng.rank{self.dist.rank}')
        if rng is not None:
            torch.set_rng_state(rng)
        log.info('resumed from %s at step %d', last, self.step)
        return True

    def train_step(self, batch) -> tuple:
        target, cond = batch_to_model_inputs(batch, self.device)
        n = target.shape[0]
        flags = Flags(context_visible=dropout_flags(n, self.config.context_dropout, self.device),
                      render_visible=dropout_flags(n, self.config.render_dropout, self.device))
        for group in self.optimizer.param_groups:
            group['lr'] = learning_rate_at(self.step, self.config)
        with self.autocast:
            loss = diffusion_loss(self.network, self.diffusion, target, cond, flags)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                   self.config.grad_clip)
        self.optimizer.step()
        self.ema.update_parameters(self.model)
        self.step += 1
        return loss.item(), grad_norm.item()

    @torch.no_grad()
    def validation_loss(self) -> dict:
        """Mean v-loss of the EMA network on fixed noise, with and without the render."""
        if self.val_set is None or len(self.val_set) == 0:
            return {}
        loader = DataLoader(self.val_set, batch_size=self.config.batch_size, shuffle=False,
                            num_workers=0)
        generator = torch.Generator(device=self.device).manual_seed(1234)
        totals = {'val_loss': [], 'val_loss_no_render': []}
        model = self.ema.module.eval()
        for index, batch in enumerate(loader):
            if index >= self.config.validation_batches:
                break
            target, cond = batch_to_model_inputs(batch, self.device)
            ones = torch.ones(target.shape[0], device=self.device)
            for key, render_visible in (('val_loss', ones), ('val_loss_no_render', 0 * ones)):
                generator.manual_seed(1234 + index)
                with self.autocast:
                    loss = diffusion_loss(model, self.diffusion, target, cond,
                                          Flags(ones, render_visible), generator)
                totals[key].append(loss.item())
        return {k: float(np.mean(v)) for k, v in totals.items() if v}

    def save(self, name='last') -> None:
        directory = self.out_dir / name
        extra = {'training': {'step': self.step, 'config': self.config.to_dict(),
                              'history': self.history[-20:]}}
        dataset_config = getattr(self.train_set, 'config', None)
        if is_dataclass(dataset_config):
            extra['dataset'] = asdict(dataset_config)
        checkpoint.save_checkpoint(directory, self.ema.module, self.config.diffusion,
                                   extra=extra)
        checkpoint.save_training_state(directory, self.model, self.optimizer, self.step,
                                       {'ema_updates': int(self.ema.n_averaged.item()),
                                        'seconds': self.seconds, 'history': self.history},
                                       {f'rng.rank{self.dist.rank}': torch.get_rng_state()})

    def fit(self, progress=True) -> list:
        """Train until config.steps or config.max_minutes; checkpoints allow resuming."""
        config = self.config
        if config.steps <= 0 and config.max_minutes <= 0:
            raise ValueError('training needs a limit: steps > 0 or max_minutes > 0')
        steps = config.steps if config.steps > 0 else math.inf
        start = time.monotonic()
        bar = tqdm(total=config.steps or None, initial=self.step, desc='train',
                   disable=not (progress and self.dist.is_main))
        epoch = 0
        running = []
        stopped_early = False
        if len(self.loader) == 0:
            raise ValueError(f'{len(self.train_set)} training windows make no batch of '
                             f'{config.batch_size}')
        seconds_before = self.seconds
        while self.step < steps and not stopped_early:
            if self.sampler is not None:
                self.sampler.set_epoch(epoch)
            for batch in self.loader:
                loss, grad_norm = self.train_step(batch)
                running.append(loss)
                bar.update(1)
                if self.step % config.log_every == 0:
                    bar.set_postfix(loss=f'{np.mean(running):.4f}')
                    self.history.append({'step': self.step, 'loss': float(np.mean(running)),
                                         'grad_norm': grad_norm,
                                         'minutes': (time.monotonic() - start) / 60})
                    running = []
                if self.step % config.validate_every == 0 and self.dist.is_main:
                    self.record_validation()
                if self.step % config.checkpoint_every == 0 and self.dist.is_main:
                    self.save()
                self.seconds = seconds_before + time.monotonic() - start
                out_of_time = (config.max_minutes > 0 and
                               time.monotonic() - start > 60 * config.max_minutes)
                if self.step >= steps or out_of_time:
                    stopped_early = out_of_time and self.step < steps
                    break
            epoch += 1
        bar.close()
        if self.dist.is_main:
            self.record_validation()
            self.save()
        if self.dist.world_size > 1:
            dist.barrier()
        return self.history

    def record_validation(self) -> None:
        metrics = self.validation_loss()
        if metrics:
            self.history.append({'step': self.step, **metrics})
            log.info('step %d: %s', self.step, json.dumps(metrics))
            self.write_samples()

    def write_samples(self, count=6) -> Path:
        """Save a PNG strip: last context frame, render, predictions, ground truth."""
        batch = next(iter(DataLoader(self.val_set, batch_size=count, shuffle=False)))
        target, cond = batch_to_model_inputs(batch, self.device)
        path = self.out_dir / 'samples' / f'step_{self.step:07d}.png'
        sample_strip(self.ema.module.eval(), self.diffusion, target, cond, path,
                     bf16=self.config.bf16)
        return path


def split_indices(count, val_fraction, seed) -> tuple:
    """Deterministic train/validation split of ``count`` items."""
    order = np.random.default_rng(seed).permutation(count)
    n_val = int(math.ceil(count * val_fraction)) if val_fraction > 0 else 0
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())
