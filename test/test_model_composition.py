"""The composition on analytic Gaussian experts, where every score is known exactly."""

from mowm_ros.model.composition import Composition
from mowm_ros.model.diffusion import Diffusion, DiffusionConfig
from mowm_ros.model.experts import Expert, Query
import pytest
import torch

PRIOR = Query(context=False, network='gauss')
COND_A = Query(context=True, network='gauss')
COND_B = Query(context=False, render=True, network='gauss')
PRIOR_VAR = 1.0
LIKELIHOODS = {COND_A: (2.0, 0.5), COND_B: (-1.0, 2.0)}   # mean, variance of each L_i


def conditional(query):
    """Mean and variance of prior x likelihood for the expert behind ``query``."""
    if query == PRIOR:
        return 0.0, PRIOR_VAR
    mean, var = LIKELIHOODS[query]
    precision = 1.0 / PRIOR_VAR + 1.0 / var
    return (mean / var) / precision, 1.0 / precision


def gaussian_v(mean, var, x_t, logsnr):
    """Exact v prediction for data N(mean, var) in the diffusion at ``logsnr``."""
    alpha, sigma = Diffusion.alpha_sigma(logsnr)
    alpha, sigma = alpha.view(-1, 1, 1, 1), sigma.view(-1, 1, 1, 1)
    eps = sigma * (x_t - alpha * mean) / (alpha ** 2 * var + sigma ** 2)
    return (eps - sigma * x_t) / alpha


def evaluate(queries, x_t, logsnr, cond):
    return [gaussian_v(*conditional(q), x_t, logsnr) for q in queries]


def composed_gaussian(composition, logsnr):
    """Precision and mean of the composed score -eps/sigma, which is linear in x."""
    x = torch.tensor([-1.0, 1.0], dtype=torch.float64).view(2, 1, 1, 1)
    logsnr = torch.full((2,), logsnr, dtype=torch.float64)
    v, prior_weight = composition.predict({'gauss': evaluate}, x, logsnr, None)
    alpha, sigma = Diffusion.alpha_sigma(logsnr)
    eps = prior_weight * sigma.view(-1, 1, 1, 1) * x + alpha.view(-1, 1, 1, 1) * v
    score = (-eps / sigma.view(-1, 1, 1, 1)).flatten()
    precision = (score[0] - score[1]) / 2.0
    return precision.item(), (score[0] + score[1]).item() / 2.0 / precision.item()


def experts(weight=1.0):
    return [Expert('a', COND_A, PRIOR, weight), Expert('b', COND_B, PRIOR, weight)]


def test_contrastive_product_gives_the_exact_product_of_experts():
    precision, mean = composed_gaussian(Composition(experts(), base=PRIOR), logsnr=14.0)
    (m_a, v_a), (m_b, v_b) = LIKELIHOODS[COND_A], LIKELIHOODS[COND_B]
    exact_precision = 1.0 / PRIOR_VAR + 1.0 / v_a + 1.0 / v_b
    exact_mean = (m_a / v_a + m_b / v_b) / exact_precision
    assert precision == pytest.approx(exact_precision, rel=1e-4)
    assert mean == pytest.approx(exact_mean, rel=1e-4)


@pytest.mark.parametrize('logsnr', [-4.0, 0.0, 3.0])
def test_contrastive_composition_is_the_product_of_the_noisy_marginals(logsnr):
    precision, mean = composed_gaussian(Composition(experts(), base=PRIOR), logsnr)
    alpha2 = torch.sigmoid(torch.tensor(logsnr, dtype=torch.float64)).item()
    sigma2 = 1.0 - alpha2

    def marginal(query):
        m, v = conditional(query)
        return alpha2 ** 0.5 * m, alpha2 * v + sigma2

    coefficients = {COND_A: 1.0, COND_B: 1.0, PRIOR: -1.0}
    exact_precision = sum(c / marginal(q)[1] for q, c in coefficients.items())
    exact_mean = sum(c * marginal(q)[0] / marginal(q)[1]
                     for q, c in coefficients.items()) / exact_precision
    assert precision == pytest.approx(exact_precision, rel=1e-6)
    assert mean == pytest.approx(exact_mean, rel=1e-6, abs=1e-9)


def test_naive_sum_counts_the_prior_twice():
    precision, _ = composed_gaussian(Composition(experts(), mode='naive', base=PRIOR), 14.0)
    (_, v_a), (_, v_b) = LIKELIHOODS[COND_A], LIKELIHOODS[COND_B]
    assert precision == pytest.approx(2.0 / PRIOR_VAR + 1.0 / v_a + 1.0 / v_b, rel=1e-4)
    contrastive, _ = composed_gaussian(Composition(experts(), base=PRIOR), 14.0)
    assert precision - contrastive == pytest.approx(1.0 / PRIOR_VAR, rel=1e-3)


def test_expert_weight_raises_its_likelihood_to_that_power():
    precision, _ = composed_gaussian(Composition(experts(weight=2.0), base=PRIOR), 14.0)
    cond_precisions = [1.0 / conditional(q)[1] for q in (COND_A, COND_B)]
    expected = 1.0 / PRIOR_VAR + sum(2.0 * (p - 1.0 / PRIOR_VAR) for p in cond_precisions)
    assert precision == pytest.approx(expected, rel=1e-4)


def test_each_distinct_query_is_evaluated_once_per_network_call():
    calls = []

    def counting(queries, x_t, logsnr, cond):
        calls.append(list(queries))
        return evaluate(queries, x_t, logsnr, cond)

    composition = Composition(experts(), base=PRIOR)
    x = torch.zeros(3, 1, 1, 1, dtype=torch.float64)
    composition.predict({'gauss': counting}, x, torch.zeros(3, dtype=torch.float64), None)
    assert len(calls) == 1 and sorted(map(str, calls[0])) == sorted(
        map(str, {PRIOR, COND_A, COND_B}))


def test_ddim_with_exact_scores_samples_the_data_distribution():
    diffusion = Diffusion(DiffusionConfig(sampler_steps=100, clip_x0=False))
    mean, var = conditional(COND_A)
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(20000, 1, 1, 1, generator=generator, dtype=torch.float64)
    samples = diffusion.sample(
        lambda x, logsnr: (gaussian_v(mean, var, x, logsnr.double()), 1.0), noise)
    assert samples.mean().item() == pytest.approx(mean, abs=0.02)
    assert samples.var().item() == pytest.approx(var, rel=0.05)


def test_unknown_mode_and_duplicate_names_are_rejected():
    with pytest.raises(ValueError, match='mode'):
        Composition(experts(), mode='sum')
    with pytest.raises(ValueError, match='unique'):
        Composition(experts() + experts())


def test_retrieval_costs_no_extra_query_and_falls_back_to_the_adapters_alone():
    from mowm_ros.model.composition import expert_set

    names = ['short_term', 'episodic', 'spatial']
    plain = Composition(expert_set(names, {}))
    retrieval = Composition(expert_set(names, {}, retrieval=True))
    assert len(retrieval.queries()) == len(plain.queries()) == 3
    episodic = retrieval.experts[1]
    assert episodic.positive == Query(context=True, adapter=True, retrieved=True)
    # Its twin is the base itself (frozen network, recent frames): where nothing is near,
    # the retrieved context holds the recent frames and the term is the adapters' alone,
    # as without retrieval.
    assert episodic.negative == retrieval.base == plain.experts[1].negative
    # Recalling far from the robot reads no recent frames, so there is nothing to replace.
    recall = expert_set(['episodic'], {}, recent_context_for_episodic=False, retrieval=True)
    assert not recall[0].positive.retrieved and not recall[0].positive.context


def test_beside_the_render_the_episodic_term_sees_it_on_both_sides():
    from mowm_ros.model.composition import expert_set

    names = ['short_term', 'episodic', 'spatial']
    composition = Composition(expert_set(names, {}, retrieval=True, memory_view=True))
    episodic, spatial = composition.experts[1], composition.experts[2]
    assert episodic.positive == Query(context=True, render=True, adapter=True, retrieved=True)
    # Its twin is the spatial expert's query: the render is counted once, by the spatial term.
    assert episodic.negative == spatial.positive == Query(context=True, render=True)
    assert len(composition.queries()) == 3                       # no query more than before
    # Without the spatial expert there is no render to learn beside: unchanged.
    alone = expert_set(['short_term', 'episodic'], {}, retrieval=True, memory_view=True)
    assert alone[1] == expert_set(['short_term', 'episodic'], {}, retrieval=True)[1]
