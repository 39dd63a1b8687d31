"""
The shipped checkpoint on a held-out Memory Maze episode: test-time finetuning stores memory.

The episode's seed is never used for training data (the shipped checkpoint saw seeds 0..23).
"""

import copy

from mowm_ros.data.maze_env import generate_episode, GenerationConfig
from mowm_ros.model import checkpoint
from mowm_ros.model.denoiser import Conditioning, Flags
from mowm_ros.model.diffusion import Diffusion
from mowm_ros.model.finetune import (EpisodicFinetuner, FinetuneConfig,
                                     keyframe_training_inputs, KeyframeBatch)
from mowm_ros.model.lora import add_lora, load_adapter_state
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow

HELD_OUT_SEED = 90_001
MEMORISED_FRAMES = 240
FINETUNE_STEPS = 100


@pytest.fixture(scope='module')
def episode():
    episode, _ = generate_episode(HELD_OUT_SEED, GenerationConfig(steps=400))
    return episode


@pytest.fixture(scope='module')
def shipped():
    if not (checkpoint.default_checkpoint_dir() / checkpoint.WEIGHTS_FILE).exists():
        pytest.fail('the shipped checkpoint is missing from the package')
    network, diffusion_config, _ = checkpoint.load_checkpoint(checkpoint.default_checkpoint_dir())
    return network.eval(), diffusion_config


def memorised_keyframes(episode):
    index = np.arange(0, MEMORISED_FRAMES, 4)
    return KeyframeBatch(rgb=episode.rgb[index], poses=episode.pose[index])


@torch.no_grad()
def denoising_error(network, inputs, adapter_on, logsnrs=(-3.0, -1.0, 1.0), seed=0):
    """Mean squared x0 error at fixed noise, with the recent context dropped (memory only)."""
    target, context, motions, target_pose = inputs
    n = target.shape[0]
    generator = torch.Generator().manual_seed(seed)
    zeros, render = torch.zeros(n), torch.zeros(n, 4, *target.shape[-2:])
    errors = []
    for logsnr in logsnrs:
        logsnr = torch.full((n,), logsnr)
        noise = torch.randn(target.shape, generator=generator)
        alpha, sigma = (a.view(-1, 1, 1, 1) for a in Diffusion.alpha_sigma(logsnr))
        x_t = alpha * target + sigma * noise
        v = network(x_t, logsnr, Conditioning(context, motions, target_pose, render),
                    Flags(zeros, zeros, torch.ones(n) if adapter_on else torch.zeros(n)))
        x0 = alpha * x_t - sigma * v
        errors.append(((x0 - target) ** 2).mean(dim=(1, 2, 3)))
    return torch.stack(errors).mean(dim=0)


@pytest.fixture(scope='module')
def finetuned(shipped, episode):
    """Finetune adapters on the first part of the episode once for every test here."""
    network, diffusion_config = shipped
    keyframes = memorised_keyframes(episode)
    finetuner = EpisodicFinetuner(network, diffusion_config, FinetuneConfig(seed=0))
    for _ in range(FINETUNE_STEPS):
        finetuner.train_step(keyframes)
    finetuner.publish(len(keyframes.rgb))
    return finetuner.network.eval(), finetuner


def test_finetuning_lowers_the_loss_on_memorised_keyframes(shipped, episode, finetuned):
    keyframes = memorised_keyframes(episode)
    inputs = keyframe_training_inputs(keyframes, np.arange(len(keyframes.rgb)),
                                      shipped[0].config.context_frames)
    network, _ = finetuned
    before = denoising_error(network, inputs, adapter_on=False)
    after = denoising_error(network, inputs, adapter_on=True)
    # The shipped network already predicts these frames well (x0 MSE ~0.009); the bounds are
    # set below what 100 steps reach (ratio 0.94, see the issue note), above noise.
    assert after.mean() < 0.97 * before.mean(), (before.mean().item(), after.mean().item())
    assert (after < before).float().mean() > 0.6


def test_episodic_expert_recalls_revisited_places_better_than_the_frozen_network(
        shipped, episode, finetuned):
    network, finetuner = finetuned
    revisits = [t for t in range(MEMORISED_FRAMES + 8, len(episode))
                if episode.extras['revisit'][t]][::4]
    assert len(revisits) >= 8, 'the held-out episode has too few revisits to test recall'
    everything = KeyframeBatch(rgb=episode.rgb, poses=episode.pose)
    inputs = keyframe_training_inputs(everything, np.array(revisits),
                                      shipped[0].config.context_frames)
    # As for an RGB-only camera: no render, and the recent frames dropped, so the adapters
    # are the only memory. Measured (34 revisits): x0 MSE 0.00893 against 0.00927 frozen, a
    # ratio of 0.964, better at 62% of the revisits; the bounds leave a margin below that.
    frozen = denoising_error(network, inputs, adapter_on=False)
    adapted = denoising_error(network, inputs, adapter_on=True)
    assert adapted.mean() < 0.98 * frozen.mean(), (adapted.mean().item(), frozen.mean().item())
    assert (adapted < frozen).float().mean() > 0.55

    # The sampler's network, loaded with the published set, behaves the same.
    sampler = copy.deepcopy(shipped[0])
    add_lora(sampler, finetuner.config.rank, finetuner.config.alpha)
    load_adapter_state(sampler, finetuner.latest().weights)
    torch.testing.assert_close(denoising_error(sampler, inputs, adapter_on=True), adapted,
                               rtol=1e-4, atol=1e-5)


def test_spatial_memory_recalls_revisited_places(episode):
    """After observing the first frames, views of places seen before are predicted far better."""
    from mowm_ros.world_model import Frame, WorldModel, WorldModelConfig
    from skimage.metrics import peak_signal_noise_ratio
    model = WorldModel(WorldModelConfig(finetune_on_observe=False))
    for t in range(MEMORISED_FRAMES):
        model.observe(Frame(rgb=episode.rgb[t], depth=episode.depth[t], pose=episode.pose[t],
                            K=episode.K, stamp=int(episode.stamp[t])))
    revisits = [t for t in range(MEMORISED_FRAMES + 8, len(episode))
                if episode.extras['revisit'][t]][::6][:12]
    poses = episode.pose[revisits][:, None]        # one path of one pose per revisit

    def psnr(experts):
        images = model.imagine(poses, experts=experts).images[:, 0]
        return np.array([peak_signal_noise_ratio(episode.rgb[t], image, data_range=255)
                         for t, image in zip(revisits, images)])

    without, with_memory = psnr(('short_term',)), psnr(('short_term', 'spatial'))
    model.close()
    assert with_memory.mean() > without.mean() + 3.0, (with_memory.mean(), without.mean())
    assert (with_memory > without).mean() >= 0.75


def test_retrieved_keyframes_recall_revisited_places_without_depth(episode):
    """RGB-only: the episodic expert reading the keyframes taken near each revisit."""
    from mowm_ros.world_model import Frame, WorldModel, WorldModelConfig
    from skimage.metrics import peak_signal_noise_ratio
    # Adapters stay at zero (no finetuning): what is measured is the retrieval alone.
    model = WorldModel(WorldModelConfig(finetune_on_observe=False, episodic_retrieval=True))
    for t in range(MEMORISED_FRAMES):
        model.observe(Frame(rgb=episode.rgb[t], pose=episode.pose[t], K=episode.K,
                            stamp=int(episode.stamp[t])))
    assert len(model.spatial) == 0
    revisits = [t for t in range(MEMORISED_FRAMES + 8, len(episode))
                if episode.extras['revisit'][t]][::6][:12]
    poses = episode.pose[revisits][:, None]

    def psnr(experts):
        images = model.imagine(poses, experts=experts).images[:, 0]
        return np.array([peak_signal_noise_ratio(episode.rgb[t], image, data_range=255)
                         for t, image in zip(revisits, images)])

    without, recalled = psnr(('short_term',)), psnr(('short_term', 'episodic'))
    # Off, the episodic expert with zero adapters adds exactly nothing.
    model.config.episodic_retrieval = False
    unchanged = psnr(('short_term', 'episodic'))
    model.close()
    np.testing.assert_allclose(unchanged, without)
    # Measured: 15.23 -> 18.00 dB over the 12 revisits, by more than 1 dB at 7, within
    # 0.1 dB at the others; the bounds leave a margin below that.
    assert recalled.mean() > without.mean() + 1.5, (recalled.mean(), without.mean())
    assert (recalled > without + 1.0).mean() >= 0.5
    assert (recalled > without - 0.5).all()
