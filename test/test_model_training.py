import json
import os
from pathlib import Path
import subprocess
import sys

from mowm_ros.model import checkpoint
from mowm_ros.model.training import Trainer
import pytest
from tiny_training import ShiftDataset, tiny_config
import torch


def test_a_few_steps_lower_the_validation_loss(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, steps=60), ShiftDataset(), ShiftDataset())
    trainer.ema.module.load_state_dict(trainer.model.state_dict())
    before = trainer.validation_loss()['val_loss_no_render']
    trainer.config.ema_decay = 0.0
    trainer.fit(progress=False)
    trainer.ema.module.load_state_dict(trainer.model.state_dict())
    after = trainer.validation_loss()['val_loss_no_render']
    assert after < 0.9 * before
    assert (tmp_path / 'last' / 'model.safetensors').is_file()
    assert list((tmp_path / 'samples').glob('*.png'))


def test_checkpoint_round_trip_is_exact(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, steps=3), ShiftDataset(), None)
    trainer.fit(progress=False)
    model, diffusion_config, config = checkpoint.load_checkpoint(tmp_path / 'last')
    for key, value in trainer.ema.module.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert config['training']['step'] == 3
    assert diffusion_config == trainer.config.diffusion


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    def run(out_dir, steps, resume):
        trainer = Trainer(tiny_config(out_dir, steps=steps, checkpoint_every=1),
                          ShiftDataset(), None)
        trainer.loader = torch.utils.data.DataLoader(ShiftDataset(), batch_size=8)
        if resume:
            assert trainer.resume()
        trainer.fit(progress=False)
        return trainer

    # 16 samples in batches of 8: an epoch is 2 steps, so both runs see the same batches.
    straight = run(tmp_path / 'a', 4, resume=False)
    run(tmp_path / 'b', 2, resume=False)
    resumed = run(tmp_path / 'b', 4, resume=True)
    assert resumed.step == 4
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    for name, value in straight.ema.module.state_dict().items():
        assert torch.equal(value, resumed.ema.module.state_dict()[name]), name


def test_mismatched_checkpoint_names_the_difference(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, steps=1), ShiftDataset(), None)
    trainer.fit(progress=False)
    expected = tiny_config(tmp_path).denoiser
    expected.channels = (16, 48)
    with pytest.raises(checkpoint.CheckpointError, match=r'channels: checkpoint has \[16, 32\]'):
        checkpoint.load_checkpoint(tmp_path / 'last', expected_denoiser=expected)
    weights = tmp_path / 'last' / 'model.safetensors'
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(checkpoint.CheckpointError, match='corrupt weights'):
        checkpoint.load_checkpoint(tmp_path / 'last')


@pytest.mark.slow
def test_ddp_with_two_gloo_processes_keeps_replicas_identical(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent), OMP_NUM_THREADS='1')
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         '--standalone', str(Path(__file__).parent / 'ddp_worker.py'), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in (0, 1)]
    assert all(r['world_size'] == 2 and r['backend'] == 'gloo' and r['step'] == 6 for r in ranks)
    assert ranks[0]['checksum'] == pytest.approx(ranks[1]['checksum'], rel=1e-12)


def test_the_training_device_is_chosen_and_checked(tmp_path, monkeypatch):
    assert Trainer(tiny_config(tmp_path, device='cpu'), ShiftDataset(), None).device.type == \
        'cpu'
    with pytest.raises(ValueError, match=r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', "
                                         r"got 'gpu'"):
        tiny_config(tmp_path, device='gpu')
    # Asking for a GPU torch does not see is an error, never a silent run on the CPU.
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(ValueError, match=r"device 'cuda:0': torch sees no CUDA device"):
        Trainer(tiny_config(tmp_path, device='cuda:0'), ShiftDataset(), None)
    assert Trainer(tiny_config(tmp_path), ShiftDataset(), None).device.type == 'cpu'   # auto
