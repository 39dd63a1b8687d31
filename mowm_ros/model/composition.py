"""
Composition of memory experts.

Contrastive product of experts (the method): the short-term expert's conditional prediction is
the base, and every memory expert adds only what its memory contributes over its own memory-less
twin, so the shared prior is counted once::

    v = v(base) + sum_e w_e * (v(positive_e) - v(negative_e))

Naive product (the ablation): the experts' conditional predictions are summed, which multiplies
the prior in once per expert and over-sharpens::

    v = sum_e v(positive_e)

Both are linear in the networks' outputs; ``prior_weight`` (the sum of the coefficients) lets
the sampler turn the composed v into the exact composed eps.
"""

from mowm_ros.model import experts as library
from mowm_ros.model.experts import DEFAULT_WEIGHTS, MEMORY_EXPERTS, Query
import torch

MODES = ('contrastive', 'naive')


class Composition:

    def __init__(self, experts, mode='contrastive', base=Query(context=True)) -> None:
        if mode not in MODES:
            raise ValueError(f'composition mode must be one of {MODES}, got {mode!r}')
        names = [expert.name for expert in experts]
        if len(set(names)) != len(names):
            raise ValueError(f'expert names must be unique, got {names}')
        self.experts = list(experts)
        self.mode = mode
        self.base = base

    def terms(self) -> list:
        """Return [(coefficient, query)] whose weighted sum is the composed prediction."""
        if self.mode == 'naive':
            return [(expert.naive_weight, expert.positive) for expert in self.experts]
        terms = [(1.0, self.base)]
        for expert in self.experts:
            if expert.weight != 0.0:
                terms += [(expert.weight, expert.positive), (-expert.weight, expert.negative)]
        return terms

    def queries(self) -> list:
        """Return the distinct queries, in a stable order, grouped later by network."""
        unique = []
        for _, query in self.terms():
            if query not in unique:
                unique.append(query)
        return unique

    def predict(self, evaluators, x_t, logsnr, cond) -> tuple:
        """
        Return ``(v, prior_weight)`` for the composed prediction at ``x_t``.

        ``evaluators`` maps a network name to a callable(queries, x_t, logsnr, cond) returning
        one v per query; each network runs once, on all of its queries batched.
        """
        predictions = {}
        queries = self.queries()
        for network in dict.fromkeys(query.network for query in queries):
            if network not in evaluators:
                raise KeyError(f'no evaluator for network {network!r}')
            batch = [query for query in queries if query.network == network]
            predictions.update(zip(batch, evaluators[network](batch, x_t, logsnr, cond)))
        terms = self.terms()
        v = sum(coefficient * predictions[query] for coefficient, query in terms)
        return v, sum(coefficient for coefficient, _ in terms)


def expert_set(names, weights, recent_context_for_episodic=True, retrieval=False,
               memory_view=False) -> list:
    """
    Build experts by name (``EXPERT_NAMES``) with their weights (default: DEFAULT_WEIGHTS).

    ``retrieval``: the episodic expert reads keyframes retrieved near the target.
    ``memory_view``: beside the spatial expert, the episodic expert's term sees the render on
    both sides (its adapters learnt the keyframes with their memory views).
    """
    weights = {**DEFAULT_WEIGHTS, **weights}
    beside_render = memory_view and 'spatial' in names
    factories = {
        'short_term': lambda: library.short_term_expert(weights['short_term']),
        'episodic': lambda: library.episodic_expert(weights['episodic'],
                                                    recent_context_for_episodic, retrieval,
                                                    beside_render),
        'spatial': lambda: library.spatial_expert(weights['spatial']),
    }
    unknown = set(names) - set(factories)
    if unknown:
        raise ValueError(f'unknown experts {sorted(unknown)}; known: {sorted(factories)}')
    return [factories[name]() for name in names]


def recall_composition(names, weights) -> Composition:
    """
    Compose the memory experts among ``names`` over a base that sees no recent frames.

    It predicts the view at a pose from the memories alone: for a place metres away from the
    robot the recent frames say nothing (the network was trained with context dropout).
    """
    memory = [name for name in names if name in MEMORY_EXPERTS]
    if not memory:
        raise ValueError(f'recalling needs a memory expert (episodic, spatial), got {names}')
    weights = {**DEFAULT_WEIGHTS, **weights}
    factories = {
        'episodic': lambda: library.episodic_expert(weights['episodic'], False),
        'spatial': lambda: library.spatial_expert(weights['spatial'], False),
    }
    return Composition([factories[name]() for name in memory], 'contrastive',
                       base=Query(context=False))


def sample_composed(composition, evaluators, diffusion, cond, steps=None, generator=None,
                    shared_noise=False) -> torch.Tensor:
    """
    Draw one frame per conditioning row with DDIM on the composed prediction.

    With ``shared_noise`` every row starts from the same noise, so rows differ only by their
    conditioning (candidates compared with each other then do not differ by luck).
    """
    size = cond.context.shape[-1]
    rows = 1 if shared_noise else cond.batch_size
    noise = torch.randn((rows, 3, size, size), generator=generator, device=cond.context.device)
    noise = noise.expand(cond.batch_size, -1, -1, -1).contiguous()
    return diffusion.sample(
        lambda x_t, logsnr: composition.predict(evaluators, x_t, logsnr, cond), noise, steps)
