"""A tiny learnable dataset and model config, so training tests take seconds on a CPU."""

from mowm_ros.model.checkpoint import save_checkpoint
from mowm_ros.model.denoiser import Denoiser, DenoiserConfig
from mowm_ros.model.diffusion import DiffusionConfig
from mowm_ros.model.training import TrainConfig
import torch
from torch.utils.data import Dataset

SIZE = 16
CONTEXT = 2


class ShiftDataset(Dataset):
    """The target is the last context frame rolled by the motion's dx pixels: learnable."""

    def __init__(self, count=16, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.frames = torch.rand(count, CONTEXT, 3, SIZE, SIZE, generator=generator) * 2 - 1
        self.shifts = torch.randint(-2, 3, (count,), generator=generator)

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, index):
        shift = int(self.shifts[index])
        motions = torch.zeros(CONTEXT, 3)
        motions[-1, 0] = shift
        return {'context': self.frames[index], 'motions': motions,
                'target': torch.roll(self.frames[index, -1], shift, dims=-1),
                'abs_pose': torch.tensor([[0.0, 0.0, 1.0, 0.0]] * (CONTEXT + 1)),
                'render_rgb': torch.zeros(3, SIZE, SIZE),
                'render_mask': torch.zeros(1, SIZE, SIZE)}


def tiny_config(out_dir, **overrides):
    values = {'out_dir': str(out_dir), 'steps': 30, 'batch_size': 8, 'learning_rate': 2e-3,
              'warmup_steps': 1, 'num_workers': 0, 'log_every': 5, 'validate_every': 1000,
              'checkpoint_every': 10, 'validation_batches': 2, 'bf16': False,
              'ema_decay': 0.5,
              'denoiser': DenoiserConfig(image_size=SIZE, context_frames=CONTEXT,
                                         channels=(16, 32), blocks_per_level=1,
                                         embedding_dim=32, group_norm_groups=8)}
    values.update(overrides)
    return TrainConfig(**values)


def save_untrained_checkpoint(directory, image_size, sampler_steps):
    """Save a small random network (untrained, but not all-zero output) as a checkpoint."""
    torch.manual_seed(0)
    network = Denoiser(DenoiserConfig(image_size=image_size, context_frames=2, channels=(16, 32),
                                      embedding_dim=32, group_norm_groups=8))
    with torch.no_grad():
        for p in network.parameters():
            p.normal_(0, 0.02)
    save_checkpoint(directory, network, DiffusionConfig(sampler_steps=sampler_steps))
    return directory
