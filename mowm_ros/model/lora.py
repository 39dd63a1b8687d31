"""
Low-rank adapters whose strength is chosen per sample at call time.

A per-sample ``adapter_scale`` (N,) lets one batched forward pass evaluate the adapted
network (scale 1) and its frozen twin (scale 0) side by side, which is what the episodic
expert's contrastive term needs.

Training (gradients on) computes the update as its own low-rank path, B(A(x)). Sampling
(no gradients, scales 0 or 1) folds it into the weights instead, W' = W + s * B A, once per
adapter set, and runs the batch as one grouped convolution in which each sample has its own
weights (W or W'): on a CPU that costs about what the frozen conv alone costs on the batch,
where the separate path added two small convolutions and a scatter per layer (the sampler's
all-three step: 73 -> 60 ms per frame on 2 cores; ``mowm bench model``).
"""

import torch
from torch import nn
import torch.nn.functional as F


class LoRAConv2d(nn.Module):
    """A frozen Conv2d plus a rank-``rank`` update B(A(x)), B initialised to zero."""

    def __init__(self, base, rank, alpha=None) -> None:
        super().__init__()
        self.base = base
        self.rank = rank
        self.scaling = (alpha if alpha is not None else rank) / rank
        self.lora_down = nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride,
                                   base.padding, bias=False)
        self.lora_up = nn.Conv2d(rank, base.out_channels, 1, bias=False)
        nn.init.kaiming_uniform_(self.lora_down.weight, a=5 ** 0.5)
        nn.init.zeros_(self.lora_up.weight)
        self.lora_down.to(base.weight.device)
        self.lora_up.to(base.weight.device)

    def forward(self, x, adapter_scale=None) -> torch.Tensor:
        if adapter_scale is None:
            return self.base(x)
        if not torch.compiler.is_compiling():  # a captured graph needs static shapes
            if not torch.is_grad_enabled() and bool(((adapter_scale == 0)
                                                     | (adapter_scale == 1)).all()):
                return self._forward_folded(x, adapter_scale)
        out = self.base(x)
        if not torch.compiler.is_compiling():
            active = torch.nonzero(adapter_scale).flatten()
            if len(active) == 0:
                return out
            if len(active) < len(x):
                # Only the adapted samples pay for the update (the frozen twins skip it).
                update = self.lora_up(self.lora_down(x[active])) * self.scaling
                scale = adapter_scale[active].view(-1, 1, 1, 1).to(update.dtype)
                return out.index_add(0, active, (update * scale).to(out.dtype))
        update = self.lora_up(self.lora_down(x)) * self.scaling
        return out + update * adapter_scale.view(-1, 1, 1, 1).to(update.dtype)

    def folded_weight(self) -> tuple:
        """
        Return (key, W + scaling * B A in the frozen weight's dtype, weight stacks by pattern).

        Recomputed only on a change: the key is the weights themselves and their in-place
        version counters, which loading an adapter set, an optimiser step or a reset all bump;
        the stacks built from a fold are dropped with it.
        """
        weights = (self.base.weight, self.lora_down.weight, self.lora_up.weight)
        key = tuple((w, w._version) for w in weights)
        cached = getattr(self, '_folded', None)
        if cached is None or not all(a is b and u == v for (a, u), (b, v)
                                     in zip(cached[0], key)):
            update = torch.einsum('or,rikl->oikl', self.lora_up.weight[:, :, 0, 0].float(),
                                  self.lora_down.weight.float())
            folded = (self.base.weight.float() + self.scaling * update).to(
                self.base.weight.dtype)
            cached = self._folded = (key, folded, {})
        return cached

    def _forward_folded(self, x, adapter_scale) -> torch.Tensor:
        """Per-sample weights, W where the scale is 0 and W' where it is 1: one grouped conv."""
        base = self.base
        pattern = tuple(bool(a) for a in adapter_scale.tolist())
        if not any(pattern):
            return base(x)
        _, folded, stacks = self.folded_weight()
        if pattern not in stacks:
            stacks[pattern] = (
                torch.cat([folded if adapted else base.weight for adapted in pattern]),
                None if base.bias is None else base.bias.repeat(len(pattern)))
        weight, bias = stacks[pattern]
        n, channels, height, width = x.shape
        out = F.conv2d(x.reshape(1, n * channels, height, width), weight, bias, base.stride,
                       base.padding, base.dilation, groups=n)
        return out.reshape(n, -1, *out.shape[-2:])


class AdaptableConv2d(nn.Module):
    """A Conv2d that can later receive a LoRA update; behaves as a plain conv until then."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(*args, **kwargs)
        self.lora = None

    def add_lora(self, rank, alpha=None) -> None:
        self.lora = LoRAConv2d(self.conv, rank, alpha)

    def forward(self, x, adapter_scale=None) -> torch.Tensor:
        if self.lora is None:
            return self.conv(x)
        return self.lora(x, adapter_scale)


def add_lora(module, rank, alpha=None) -> dict:
    """Attach LoRA to every AdaptableConv2d in ``module``; return the adapter parameters."""
    for layer in module.modules():
        if isinstance(layer, AdaptableConv2d) and layer.lora is None:
            layer.add_lora(rank, alpha)
    return adapter_parameters(module)


def adapter_parameters(module) -> dict:
    """Return the LoRA parameters of ``module`` by name."""
    return {name: p for name, p in module.named_parameters() if '.lora_' in name}


def adapter_state(module) -> dict:
    """Return a detached copy of the LoRA weights (a consistent set to publish or save)."""
    return {name: p.detach().clone() for name, p in adapter_parameters(module).items()}


@torch.no_grad()
def load_adapter_state(module, state) -> None:
    """Copy a whole adapter set into ``module``; names and shapes must match exactly."""
    params = adapter_parameters(module)
    if set(params) != set(state):
        missing = sorted(set(params) - set(state))[:3]
        unexpected = sorted(set(state) - set(params))[:3]
        raise ValueError(f'adapter set does not match the network: missing {missing}, '
                         f'unexpected {unexpected}')
    for name, value in state.items():
        if params[name].shape != value.shape:
            raise ValueError(f'adapter {name} has shape {tuple(value.shape)}, '
                             f'expected {tuple(params[name].shape)}')
    for name, value in state.items():
        params[name].copy_(value)


@torch.no_grad()
def reset_adapters(module) -> None:
    """Return every adapter to zero effect (lora_up = 0) with fresh lora_down weights."""
    for layer in module.modules():
        if isinstance(layer, LoRAConv2d):
            nn.init.kaiming_uniform_(layer.lora_down.weight, a=5 ** 0.5)
            nn.init.zeros_(layer.lora_up.weight)
