"""
Pixel-space U-Net denoiser for 64x64 frames, conditioned on recent frames, motion, pose, memory.

Inputs, stacked on channels: the noisy target, K context frames, the spatial-memory render
(RGB + coverage mask), all from a ``Conditioning``. The noise level, the relative motions, the
target's absolute pose and the "context visible" / "render visible" ``Flags`` enter through an
embedding that modulates every residual block (adaptive group norm). The first layer packs 2x2
pixels into channels so the network works at 32, 16 and 8 pixels, which keeps it fast on a CPU.
"""

from dataclasses import asdict, dataclass
import math

from mowm_ros.model.lora import AdaptableConv2d
import torch
from torch import nn
import torch.nn.functional as F


@dataclass
class Conditioning:
    """What a batch of N target frames is predicted from (tensors on the model's device)."""

    context: torch.Tensor       # (N, K, 3, H, W) in [-1, 1]
    motions: torch.Tensor       # (N, K, 3) frame-to-next motion, the last one to the target
    target_pose: torch.Tensor   # (N, 4) x, y, cos yaw, sin yaw in the map frame
    render: torch.Tensor        # (N, 4, H, W) render RGB in [-1, 1] + coverage mask
    # Episodic keyframes retrieved near each target and the motions chaining them to it
    # (memory/retrieval.py), for queries that read them in place of the recent frames.
    retrieved_context: torch.Tensor = None   # (N, K, 3, H, W)
    retrieved_motions: torch.Tensor = None   # (N, K, 3)

    @property
    def batch_size(self) -> int:
        return self.context.shape[0]

    def repeat(self, times: int) -> 'Conditioning':
        """Return the batch repeated ``times`` over: N * times rows, copy after copy."""
        return self.for_queries([False] * times)

    def for_queries(self, retrieved) -> 'Conditioning':
        """
        Return the batch once per query, copy after copy (N * len(retrieved) rows).

        Copy i holds the retrieved keyframes in place of the recent frames where
        ``retrieved[i]``; the retrieved tensors themselves are not carried over.
        """
        def stack(tensor):
            return tensor.repeat(len(retrieved), *([1] * (tensor.dim() - 1)))

        if not any(retrieved):
            context, motions = stack(self.context), stack(self.motions)
        else:
            if self.retrieved_context is None or self.retrieved_motions is None:
                raise ValueError('a query reads retrieved keyframes, but the conditioning '
                                 'holds none')
            context = torch.cat([self.retrieved_context if r else self.context
                                 for r in retrieved])
            motions = torch.cat([self.retrieved_motions if r else self.motions
                                 for r in retrieved])
        return Conditioning(context, motions, stack(self.target_pose), stack(self.render))


@dataclass
class Flags:
    """What one forward pass sees, per sample (N,): 1 on, 0 off."""

    context_visible: torch.Tensor   # recent frames and motions (0: dropped, as in training)
    render_visible: torch.Tensor    # the spatial-memory render (0: blanked)
    adapter_scale: torch.Tensor = None   # LoRA updates (None: no adapters at all)


@dataclass
class DenoiserConfig:
    image_size: int = 64
    context_frames: int = 4
    channels: tuple = (64, 96, 128)
    blocks_per_level: int = 1
    attention_heads: int = 4
    embedding_dim: int = 256
    dropout: float = 0.0
    pose_scale: float = 8.0  # metres: the longest wavelength of the pose Fourier features
    group_norm_groups: int = 16

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)
        if self.image_size % (2 ** len(self.channels)) != 0:
            raise ValueError(f'image_size {self.image_size} must be divisible by '
                             f'{2 ** len(self.channels)} for {len(self.channels)} levels')
        if any(c % self.group_norm_groups for c in self.channels):
            raise ValueError(f'channels {self.channels} must be multiples of '
                             f'group_norm_groups {self.group_norm_groups}')

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def fourier_features(x, frequencies) -> torch.Tensor:
    """Concatenate sin and cos of ``x`` (..., D) at each frequency: (..., 2 * D * F)."""
    angles = x.unsqueeze(-1) * frequencies
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)


class ConditionEmbedding(nn.Module):
    """Noise level, motions, target pose and visibility flags -> one embedding vector."""

    def __init__(self, config) -> None:
        super().__init__()
        dim = config.embedding_dim
        self.register_buffer('noise_frequencies', 2.0 ** torch.arange(8) * math.pi / 2)
        self.register_buffer('pose_frequencies',
                             2.0 ** torch.arange(6) * 2 * math.pi / config.pose_scale)
        noise_features = 2 * len(self.noise_frequencies)
        condition_features = (config.context_frames * 3      # motions
                              + 2 * 2 * 6 + 2                 # pose x, y Fourier + cos, sin yaw
                              + 2)                            # visibility flags
        self.noise_mlp = nn.Sequential(nn.Linear(noise_features, dim), nn.SiLU(),
                                       nn.Linear(dim, dim))
        self.condition_mlp = nn.Sequential(nn.Linear(condition_features, dim), nn.SiLU(),
                                           nn.Linear(dim, dim))

    def forward(self, logsnr, motions, target_pose, flags) -> torch.Tensor:
        noise = fourier_features((logsnr / 15.0).unsqueeze(-1), self.noise_frequencies)
        pose = torch.cat([fourier_features(target_pose[:, :2], self.pose_frequencies),
                          target_pose[:, 2:]], dim=-1)
        condition = torch.cat([motions.flatten(1), pose, flags], dim=-1)
        return self.noise_mlp(noise) + self.condition_mlp(condition)


class ResidualBlock(nn.Module):

    def __init__(self, in_channels, out_channels, embedding_dim, groups, dropout) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = AdaptableConv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.modulation = nn.Linear(embedding_dim, 2 * out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = AdaptableConv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.conv.weight)
        self.skip = (nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels
                     else nn.Identity())

    def forward(self, x, embedding, adapter_scale=None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)), adapter_scale)
        scale, shift = self.modulation(embedding)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm2(h) * (1 + scale) + shift)
        h = self.conv2(self.dropout(h), adapter_scale)
        return self.skip(x) + h


class SelfAttention(nn.Module):

    def __init__(self, channels, heads, groups) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = AdaptableConv2d(channels, 3 * channels, 1)
        self.out = AdaptableConv2d(channels, channels, 1)
        nn.init.zeros_(self.out.conv.weight)

    def forward(self, x, adapter_scale=None) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x), adapter_scale).reshape(n, 3, self.heads, c // self.heads,
                                                            h * w)
        q, k, v = (t.transpose(-1, -2) for t in qkv.unbind(1))
        attended = F.scaled_dot_product_attention(q, k, v)
        attended = attended.transpose(-1, -2).reshape(n, c, h, w)
        return x + self.out(attended, adapter_scale)


class Level(nn.Module):
    """Residual blocks (and attention at the coarsest level) at one resolution."""

    def __init__(self, in_channels, out_channels, blocks, config, attention) -> None:
        super().__init__()
        groups, emb = config.group_norm_groups, config.embedding_dim
        self.blocks = nn.ModuleList(
            ResidualBlock(in_channels if i == 0 else out_channels, out_channels, emb, groups,
                          config.dropout) for i in range(blocks))
        self.attention = (SelfAttention(out_channels, config.attention_heads, groups)
                          if attention else None)

    def forward(self, x, embedding, adapter_scale=None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, embedding, adapter_scale)
        if self.attention is not None:
            x = self.attention(x, adapter_scale)
        return x


class Denoiser(nn.Module):
    """Predicts v for the noisy target frame (v-parameterisation)."""

    def __init__(self, config=None) -> None:
        super().__init__()
        self.config = config = config or DenoiserConfig()
        in_channels = 3 + 3 * config.context_frames + 4
        channels = config.channels
        self.embedding = ConditionEmbedding(config)
        self.stem = nn.Conv2d(4 * in_channels, channels[0], 3, padding=1)
        last = len(channels) - 1
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, width in enumerate(channels):
            self.down.append(Level(channels[max(i - 1, 0)] if i else channels[0], width,
                                   config.blocks_per_level, config, attention=i == last))
            if i < last:
                self.downsample.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
        self.middle = Level(channels[-1], channels[-1], 2, config, attention=True)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(channels))):
            self.up.append(Level(2 * channels[i], channels[i], config.blocks_per_level, config,
                                 attention=i == last))
            if i > 0:
                self.upsample.append(nn.Conv2d(channels[i], channels[i - 1], 3, padding=1))
        self.head_norm = nn.GroupNorm(config.group_norm_groups, channels[0])
        self.head = nn.Conv2d(channels[0], 4 * 3, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x_t: torch.Tensor, logsnr: torch.Tensor, cond: Conditioning,
                flags: Flags) -> torch.Tensor:
        """
        Predict v for ``x_t`` (N, 3, H, W) at noise level ``logsnr`` (N,).

        The context and motions, and the render, of ``cond`` are zeroed where their visibility
        flag is 0, as during training with dropout; ``flags.adapter_scale`` switches LoRA
        updates on per sample.
        """
        context_visible = flags.context_visible.to(x_t.dtype)
        render_visible = flags.render_visible.to(x_t.dtype)
        adapter_scale = flags.adapter_scale
        context = cond.context * context_visible.view(-1, 1, 1, 1, 1)
        motions = cond.motions * context_visible.view(-1, 1, 1)
        render = cond.render * render_visible.view(-1, 1, 1, 1)
        visible = torch.stack([context_visible, render_visible], dim=-1)
        embedding = self.embedding(logsnr, motions, cond.target_pose, visible)

        h = torch.cat([x_t, context.flatten(1, 2), render], dim=1)
        h = self.stem(F.pixel_unshuffle(h, 2))
        skips = []
        for i, level in enumerate(self.down):
            h = level(h, embedding, adapter_scale)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.middle(h, embedding, adapter_scale)
        for i, level in enumerate(self.up):
            h = level(torch.cat([h, skips.pop()], dim=1), embedding, adapter_scale)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode='nearest'))
        return F.pixel_shuffle(self.head(F.silu(self.head_norm(h))), 2)
