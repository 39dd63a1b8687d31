"""The sampler's thread count leaves the finetuning thread its core (issue 16)."""

from mowm_ros.model import threads
from mowm_ros.world_model import WorldModel, WorldModelConfig
import pytest
import torch


@pytest.fixture
def torch_threads():
    """Restore torch's process-wide thread count after the test."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_sampler_threads_leave_the_finetuner_its_cores(monkeypatch, torch_threads):
    monkeypatch.setattr(threads, 'available_cpus', lambda: 2)
    torch.set_num_threads(2)
    assert threads.sampler_threads(0, 1) == 1       # 2 cores, one busy finetuner
    assert threads.sampler_threads(0, 0) == 2       # no finetuner: all of them
    assert threads.sampler_threads(0, 4) == 1       # never fewer than one
    assert threads.sampler_threads(3, 1) == 3       # asked for: given
    monkeypatch.setattr(threads, 'available_cpus', lambda: 16)
    assert threads.sampler_threads(0, 1) == 2       # torch's own count is a cap
    torch.set_num_threads(1)
    assert threads.sampler_threads(0, 0) == 1


def test_the_world_model_samples_on_the_cores_the_finetuner_leaves(monkeypatch, torch_threads):
    monkeypatch.setattr(threads, 'available_cpus', lambda: 2)
    torch.set_num_threads(2)
    finetuning = WorldModel(WorldModelConfig(device='cpu'))
    assert finetuning.torch_threads == 1
    frozen = WorldModel(WorldModelConfig(device='cpu', finetune_on_observe=False))
    assert frozen.torch_threads == 2
    asked = WorldModel(WorldModelConfig(device='cpu', torch_threads=2))
    assert asked.torch_threads == 2
    with pytest.raises(ValueError, match='torch_threads'):
        WorldModelConfig(torch_threads=-1)
