"""The episodic finetuner learns keyframes with the memory views they were taken with."""

from mowm_ros import geometry
from mowm_ros.model import finetune
from mowm_ros.model.denoiser import Denoiser, DenoiserConfig
from mowm_ros.model.diffusion import DiffusionConfig
from mowm_ros.model.finetune import EpisodicFinetuner, FinetuneConfig, KeyframeBatch
import numpy as np
import pytest
import torch

CONFIG = DenoiserConfig(image_size=16, context_frames=2, channels=(16, 32),
                        embedding_dim=32, group_norm_groups=8)


def keyframes(count=6, views=True):
    rng = np.random.default_rng(0)
    poses = np.stack([geometry.camera_pose_from_planar(0.4 * i, 0.0, 0.1 * i, 0.5)
                      for i in range(count)])
    batch = KeyframeBatch(rgb=rng.integers(0, 256, (count, 16, 16, 3), np.uint8), poses=poses)
    if views:
        batch.view_rgb = rng.integers(0, 256, (count, 16, 16, 3), np.uint8)
        batch.view_mask = rng.random((count, 16, 16)) < 0.6
        batch.has_view = np.arange(count) > 0          # the first keyframe saw no memory
    return batch


@pytest.fixture
def recorded(monkeypatch):
    """Record what each training step showed the network (the real loss is still computed)."""
    seen = []
    real = finetune.diffusion_loss

    def recording(network, diffusion, target, cond, flags, generator=None):
        seen.append((cond, flags))
        return real(network, diffusion, target, cond, flags, generator)

    monkeypatch.setattr(finetune, 'diffusion_loss', recording)
    return seen


def finetuner(**config):
    return EpisodicFinetuner(Denoiser(CONFIG), DiffusionConfig(),
                             FinetuneConfig(rank=4, batch_size=4, newest_per_batch=1,
                                            bf16=False, **config))


def test_views_are_shown_beside_the_keyframes_they_were_taken_with(recorded):
    trainer = finetuner(render_dropout=0.0)
    batch = keyframes()
    trainer.rng = np.random.default_rng(1)
    indices = trainer.choose_indices(len(batch.rgb))
    trainer.rng = np.random.default_rng(1)            # the step draws the same indices
    assert np.isfinite(trainer.train_step(batch))
    cond, flags = recorded[-1]
    np.testing.assert_array_equal(flags.render_visible.numpy(), batch.has_view[indices])
    mask = batch.view_mask[indices]
    np.testing.assert_array_equal(cond.render[:, 3].numpy(), mask)
    expected = (batch.view_rgb[indices].transpose(0, 3, 1, 2) / 127.5 - 1.0) * mask[:, None]
    np.testing.assert_allclose(cond.render[:, :3].numpy(), expected, atol=1e-6)
    assert trainer.cpu_seconds > 0 and trainer.steps_done == 1


def test_without_views_or_with_all_dropped_the_render_stays_blank(recorded):
    finetuner().train_step(keyframes(views=False))
    finetuner(render_dropout=1.0).train_step(keyframes())
    assert [bool(flags.render_visible.any()) for _, flags in recorded] == [False, False]
    assert not recorded[0][0].render.any(), 'a render appeared without any memory view'


def test_render_dropout_is_checked():
    with pytest.raises(ValueError, match=r'render_dropout must be in \[0, 1\], got 1.5'):
        FinetuneConfig(render_dropout=1.5)
    assert torch.equal(finetune.keyframe_memory_views(keyframes(), [1])[1],
                       torch.tensor([True]))
