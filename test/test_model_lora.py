from mowm_ros.model.denoiser import Conditioning, Denoiser, DenoiserConfig, Flags
from mowm_ros.model.lora import (adapter_parameters, adapter_state, add_lora,
                                 load_adapter_state, reset_adapters)
import pytest
import torch

CONFIG = DenoiserConfig(image_size=16, context_frames=2, channels=(16, 32),
                        embedding_dim=32, group_norm_groups=8)


def inputs(n, seed=0):
    """Return (x_t, logsnr, Conditioning) of ``n`` random samples."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, 16, 16, generator=g), torch.randn(n, generator=g),
            Conditioning(torch.randn(n, 2, 3, 16, 16, generator=g),
                         torch.randn(n, 2, 3, generator=g), torch.randn(n, 4, generator=g),
                         torch.randn(n, 4, 16, 16, generator=g)))


def visible(n, adapter_scale=None):
    return Flags(torch.ones(n), torch.ones(n), adapter_scale)


def test_per_sample_scale_matches_separate_passes():
    torch.manual_seed(0)
    network = Denoiser(CONFIG).eval()
    add_lora(network, rank=4)
    with torch.no_grad():
        for p in network.parameters():   # zero-initialised layers would hide everything
            p.normal_(0, 0.05)
        args = inputs(2)
        mixed = network(*args, visible(2, torch.tensor([1.0, 0.0])))
        adapted = network(*args, visible(2, torch.ones(2)))
        frozen = network(*args, visible(2, None))
    torch.testing.assert_close(mixed[0], adapted[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(mixed[1], frozen[1], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(adapted[1], frozen[1])


def test_sampling_folds_the_update_into_the_weights_and_refolds_after_a_new_set():
    torch.manual_seed(0)
    network = Denoiser(CONFIG).eval()
    add_lora(network, rank=4)
    with torch.no_grad():
        for p in network.parameters():
            p.normal_(0, 0.05)
    args = inputs(3)

    def low_rank(scale):        # gradients on: the update runs as its own path, B(A(x))
        with torch.enable_grad():
            return network(*args, visible(3, scale)).detach()

    def folded(scale):          # sampling: W + s B A per sample, one grouped conv
        with torch.no_grad():
            return network(*args, visible(3, scale))

    pattern = torch.tensor([1.0, 0.0, 1.0])
    torch.testing.assert_close(folded(pattern), low_rank(pattern), rtol=1e-4, atol=1e-5)
    first = folded(pattern)
    state = {name: torch.randn_like(value) * 0.05
             for name, value in adapter_state(network).items()}
    load_adapter_state(network, state)          # a new set: the folded weights must follow
    torch.testing.assert_close(folded(pattern), low_rank(pattern), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(folded(pattern), first)
    with torch.no_grad():                       # an in-place change, as an optimiser makes
        next(p for n, p in adapter_parameters(network).items() if 'lora_up' in n).add_(0.1)
    torch.testing.assert_close(folded(pattern), low_rank(pattern), rtol=1e-4, atol=1e-5)
    # Another pattern, and a strength other than 0 or 1 (the low-rank path, scaled).
    other = torch.tensor([0.0, 1.0, 1.0])
    torch.testing.assert_close(folded(other), low_rank(other), rtol=1e-4, atol=1e-5)
    half = torch.tensor([0.5, 0.0, 1.0])
    torch.testing.assert_close(folded(half), low_rank(half), rtol=1e-4, atol=1e-5)


def test_fresh_adapters_change_nothing_and_sets_round_trip():
    torch.manual_seed(0)
    network = Denoiser(CONFIG).eval()
    with torch.no_grad():
        for p in network.parameters():
            p.normal_(0, 0.05)
        before = network(*inputs(2), visible(2))
    add_lora(network, rank=4)
    with torch.no_grad():
        after = network(*inputs(2), visible(2, torch.ones(2)))
    torch.testing.assert_close(before, after)
    state = adapter_state(network)
    with torch.no_grad():
        for p in adapter_parameters(network).values():
            p.add_(1.0)
    load_adapter_state(network, state)
    for name, value in adapter_state(network).items():
        assert torch.equal(value, state[name])

    # Trained adapters change the output; reset_adapters takes them back to no effect.
    with torch.no_grad():
        for p in adapter_parameters(network).values():
            p.normal_(0, 0.05)
        trained = network(*inputs(2), visible(2, torch.ones(2)))
        downs = {n: p.clone() for n, p in adapter_parameters(network).items() if 'lora_down' in n}
    assert not torch.allclose(trained, before)
    reset_adapters(network)
    with torch.no_grad():
        reset = network(*inputs(2), visible(2, torch.ones(2)))
    torch.testing.assert_close(reset, before)
    ups = {n: p for n, p in adapter_parameters(network).items() if 'lora_up' in n}
    assert ups and all(torch.count_nonzero(p) == 0 for p in ups.values())
    # ... with fresh down projections, so finetuning starts again from new directions.
    assert downs and all(not torch.equal(p, downs[n])
                         for n, p in adapter_parameters(network).items() if n in downs)
    with pytest.raises(ValueError, match='does not match'):
        load_adapter_state(network, {'bogus': torch.zeros(1)})


def test_finetuner_adapters_start_from_its_seed_not_the_global_rng():
    from mowm_ros.model.diffusion import DiffusionConfig
    from mowm_ros.model.finetune import EpisodicFinetuner, FinetuneConfig

    network = Denoiser(CONFIG)

    def initial_adapters(seed, global_seed):
        torch.manual_seed(global_seed)
        finetuner = EpisodicFinetuner(network, DiffusionConfig(), FinetuneConfig(rank=4,
                                                                                 seed=seed))
        return finetuner.latest().weights, torch.rand(1)

    first, after_first = initial_adapters(0, global_seed=1)
    again, _ = initial_adapters(0, global_seed=2)
    other, _ = initial_adapters(1, global_seed=1)
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert any(not torch.equal(first[name], other[name]) for name in first)
    torch.manual_seed(1)
    assert torch.equal(after_first, torch.rand(1)), 'the global RNG was consumed'
