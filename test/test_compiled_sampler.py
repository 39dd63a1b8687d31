"""The compiled sampler path (torch.compile, graph captured whole) predicts the eager frames."""

from mowm_ros.benchmarks.model import synthetic_frames
from mowm_ros.model.lora import adapter_parameters
from mowm_ros.world_model import WorldModel, WorldModelConfig
import numpy as np
import pytest
import torch

EXPERTS = ('short_term', 'episodic', 'spatial')


def observed_model(compile_mode):
    torch.manual_seed(0)  # the adapters' initial weights
    model = WorldModel(WorldModelConfig(device='cpu', compile_mode=compile_mode,
                                        finetune_on_observe=False))
    for frame in synthetic_frames(12):
        model.observe(frame)
    # Trained adapters, so the episodic expert's LoRA update is not zero, made strong enough
    # that a graph without them could not pass for the eager one.
    for _ in range(2):
        model.finetuner.train_step(model.keyframes())
    with torch.no_grad():
        for name, weight in adapter_parameters(model.finetuner.network).items():
            if 'lora_up' in name:
                weight.add_(0.1 * torch.randn_like(weight))
    model.finetuner.publish(len(model.keyframes().rgb))
    return model


def test_captured_graph_predicts_the_eager_frames(one_thread):
    # 'trace-only' captures the whole forward pass with fullgraph=True (a graph break fails)
    # and runs the captured graph on eager kernels: the same graph 'reduce-overhead' replays
    # as a CUDA graph on a GPU, checked here without a GPU or a C compiler.
    poses = np.stack([frame.pose for frame in synthetic_frames(14)[-2:]])
    paths = np.stack([poses, poses[::-1]])
    frames = {}
    torch._dynamo.reset()
    for mode in ('', 'trace-only'):
        model = observed_model(mode)
        try:
            frames[mode] = model.imagine(paths, experts=EXPERTS, seed=3).images.astype(int)
            if not mode:
                without = model.imagine(paths, experts=EXPERTS[::2], seed=3).images.astype(int)
        finally:
            model.close()
    # Dynamo's own counter (no public one): the forward pass was captured, not run eagerly.
    assert torch._dynamo.utils.counters['stats']['unique_graphs'] >= 1, 'nothing was compiled'
    # The captured graph runs the LoRA update as its own low-rank path on the whole batch
    # (static shapes); eager sampling folds it into bf16 weights (model/lora.py). The two
    # round differently: measured against fp32 sampling, both are off by at most 6 grey
    # levels, 0.72-0.73 on average, and 5 / 0.81 from each other. A wrong graph (an expert
    # or the adapters missing) differs by far more.
    difference = np.abs(frames[''] - frames['trace-only'])
    assert difference.max() <= 10 and difference.mean() <= 1.5, \
        f'captured graph differs by {difference.max()} grey levels ({difference.mean():.2f} ' \
        'on average)'
    # Without the episodic expert the frames move by 11.8 levels on average here, against
    # 0.84 between the two paths.
    episodic = np.abs(frames[''] - without).mean()
    assert episodic > 5 * difference.mean(), (episodic, difference.mean())


def test_unknown_compile_mode_is_refused():
    with pytest.raises(ValueError, match='compile must be one of'):
        WorldModelConfig(compile_mode='fastest')
