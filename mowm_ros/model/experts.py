"""
Memory experts: each names the network evaluation that carries its memory and its memory-less twin.

An expert is a pair of queries (conditional, memory-less) against a network. The composition
collects the queries of all experts, evaluates each distinct one once, in as few batched
forward passes as there are networks, and hands every expert its two predictions. A new expert
(a long-context state-space model, say) adds a query on its own network and an evaluator for
it, without touching the others.
"""

from dataclasses import dataclass, field
import types

from mowm_ros.model.compiled import compile_network
from mowm_ros.model.denoiser import Conditioning, Flags
import torch
from torch import nn

DENOISER = 'denoiser'
# The experts by name, in the order they are composed; short_term is the base of every set.
EXPERT_NAMES = ('short_term', 'episodic', 'spatial')
MEMORY_EXPERTS = ('episodic', 'spatial')
# Their default weights (read-only; copy with dict(DEFAULT_WEIGHTS) to change one).
DEFAULT_WEIGHTS = types.MappingProxyType({'short_term': 1.0, 'episodic': 1.0, 'spatial': 2.0})


@dataclass(frozen=True)
class Query:
    """One evaluation of a network: which of its inputs it sees."""

    context: bool = True      # recent frames and motions visible
    render: bool = False      # spatial-memory render visible
    adapter: bool = False     # episodic LoRA adapters switched on
    retrieved: bool = False   # the context holds episodic keyframes taken near the target
    network: str = DENOISER


@dataclass
class Expert:
    """Its contrastive term is ``weight * (prediction(positive) - prediction(negative))``."""

    name: str
    positive: Query
    negative: Query
    weight: float = 1.0
    # In the naive composition an expert contributes its conditional prediction at this weight.
    naive_weight: float = 1.0
    description: str = field(default='', compare=False)


def short_term_expert(weight=DEFAULT_WEIGHTS['short_term']) -> Expert:
    """
    Recent frames and motions: the base of every composition.

    ``weight`` > 1 adds classifier-free guidance on the recent context, ``(weight - 1) *
    (with context - context dropped)``; at 1 it only provides the base prediction.
    """
    return Expert('short_term', Query(context=True), Query(context=False), weight - 1.0,
                  description='recent frames vs context dropped')


def episodic_expert(weight=DEFAULT_WEIGHTS['episodic'], recent_context=True,
                    retrieval=False, render=False) -> Expert:
    """
    Network + LoRA finetuned on the episodic buffer; its twin is the frozen network.

    With ``retrieval`` the adapted network also reads, in place of the recent frames, the
    keyframes taken nearest the target pose (memory/retrieval.py), against the frozen network
    on the recent frames: at a revisit the term carries what the camera saw there. Where no
    keyframe is near, the conditioning holds the recent frames in their place and the term is
    the adapters' alone. With ``render`` (beside the spatial expert, adapters trained on the
    keyframes' memory views) both sides also see the render: the term is what the adapters
    know of the place beyond what the render shows, so the render is not counted twice.
    """
    if render and recent_context:
        return Expert('episodic', Query(context=True, render=True, adapter=True,
                                        retrieved=retrieval),
                      Query(context=True, render=True), weight,
                      description='adapters beside the render vs frozen network beside it')
    if retrieval and recent_context:
        return Expert('episodic', Query(context=True, adapter=True, retrieved=True),
                      Query(context=True), weight,
                      description='adapters on keyframes near the target vs frozen network on '
                                  'recent frames')
    return Expert('episodic', Query(context=recent_context, adapter=True),
                  Query(context=recent_context, adapter=False), weight,
                  description='finetuned adapters vs frozen network')


def spatial_expert(weight=DEFAULT_WEIGHTS['spatial'], recent_context=True) -> Expert:
    """Render the spatial memory at the target pose; its twin sees the render blanked."""
    return Expert('spatial', Query(context=recent_context, render=True),
                  Query(context=recent_context, render=False), weight,
                  description='memory render vs render blanked')


def store_frozen_weights_in(network, dtype):
    """
    Keep the frozen conv and linear weights of ``network`` in ``dtype``, in place.

    Under autocast they are cast to ``dtype`` on every call anyway (the cast is cached only for
    weights that require grad), so storing them cast gives the same numbers without the ~230
    copies per forward pass (12% of a CPU sampler step). The LoRA adapters stay float32: they
    are loaded from the finetuner's published sets and compared with them. For a network that
    only samples (a WorldModel's), not one that is still trained.
    """
    for name, module in network.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and '.lora_' not in f'.{name}':
            module.to(dtype)
    return network


class DenoiserEvaluator:
    """Evaluates any number of queries on the shared denoiser in one batched forward pass."""

    def __init__(self, network, autocast_dtype=None, compile_mode='') -> None:
        self.network = network
        self.autocast_dtype = autocast_dtype
        self.forward = compile_network(network, compile_mode)

    def __call__(self, queries: list, x_t: torch.Tensor, logsnr: torch.Tensor,
                 cond: Conditioning) -> list:
        n = x_t.shape[0]
        q = len(queries)
        device = x_t.device

        def flag(attribute):
            return torch.tensor([float(getattr(query, attribute)) for query in queries],
                                device=device).repeat_interleave(n)

        adapter_scale = flag('adapter') if any(query.adapter for query in queries) else None
        flags = Flags(flag('context'), flag('render'), adapter_scale)
        batch = cond.for_queries([query.retrieved for query in queries])
        autocast = torch.autocast(device.type, dtype=self.autocast_dtype,
                                  enabled=self.autocast_dtype is not None)
        with autocast:
            v = self.forward(x_t.repeat(q, 1, 1, 1), logsnr.repeat(q), batch, flags)
        # A CUDA graph's output is overwritten by its next replay: float() copies bf16 out.
        return list(v.float().split(n))
