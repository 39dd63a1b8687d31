"""
Low-rank adapters whose strength is chosen per sample at call time.

A per-sample ``adapter_scale`` (N,) lets one batched forward pass evaluate the adapted
network (scale 1) and its frozen twin (scale 0) side by side, which is what the episodic
expert's contrastive term needs.
"""

import torch
from torch import nn


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
        out = self.base(x)
        if adapter_scale is None:
            return out
        if not torch.compiler.is_compiling():  # a captured graph needs static shapes
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
