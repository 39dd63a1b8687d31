"""
Numbers the shipped checkpoint produces for fixed seeds, to check a refactor changes nothing.

``python scripts/golden_outputs.py OUT.npz`` writes them; ``--compare REF.npz`` also compares
with a reference written before the change and exits 1 when any differs by more than 1e-6.
Covers the sampler (all three experts, after observing synthetic frames), one episodic
finetuning step (its loss and the adapters it publishes) and one training step (loss and the
updated weights), all on the CPU in float32, and the sampler once more under bf16 autocast.
"""

import argparse
import sys

from mowm_ros.benchmarks.model import synthetic_frames
from mowm_ros.model.training import TrainConfig, Trainer
from mowm_ros.world_model import WorldModel, WorldModelConfig
import numpy as np
import torch


def training_batch(size=64, context=4, count=2, seed=0):
    generator = torch.Generator().manual_seed(seed)

    def uniform(*shape):
        return torch.rand(*shape, generator=generator) * 2 - 1
    return {'target': uniform(count, 3, size, size),
            'context': uniform(count, context, 3, size, size),
            'render_rgb': uniform(count, 3, size, size),
            'render_mask': (torch.rand(count, 1, size, size, generator=generator) > 0.5).float(),
            'motions': uniform(count, context, 3),
            'abs_pose': uniform(count, context + 1, 4)}


def outputs():
    torch.set_num_threads(1)
    torch.manual_seed(0)   # the adapters' initial weights
    model = WorldModel(WorldModelConfig(device='cpu', bf16=False, finetune_on_observe=False))
    model.finetuner.config.bf16 = False
    for frame in synthetic_frames(12):
        model.observe(frame)
    poses = np.stack([frame.pose for frame in synthetic_frames(14)[-2:]])
    result = {'imagine': model.imagine(poses, seed=3).images}
    result['finetune_loss'] = np.array(model.finetuner.train_step(model.keyframes()))
    model.finetuner.publish(len(model.keyframes().rgb))
    result['imagine_adapted'] = model.imagine(poses, seed=4).images
    result['recall'] = model.recall(poses, seed=5)
    for name, value in model.finetuner.latest().weights.items():
        result[f'adapter.{name}'] = value.numpy()
    model.close()
    model = WorldModel(WorldModelConfig(device='cpu', bf16=True, finetune_on_observe=False))
    for frame in synthetic_frames(12):
        model.observe(frame)
    result['imagine_bf16'] = model.imagine(poses, seed=3).images
    model.close()

    torch.manual_seed(0)
    trainer = Trainer(TrainConfig(num_workers=0, bf16=False, batch_size=2), [None], None)
    loss, grad_norm = trainer.train_step(training_batch())
    result['train_loss'] = np.array([loss, grad_norm])
    for name, value in trainer.model.state_dict().items():
        result[f'trained.{name}'] = value.numpy()
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('out', help='write the outputs to this .npz')
    parser.add_argument('--compare', help='reference .npz written before the change')
    args = parser.parse_args(argv)
    result = outputs()
    np.savez(args.out, **result)
    if not args.compare:
        return 0
    with np.load(args.compare, allow_pickle=False) as reference:
        worst = 0.0
        for name in sorted(set(reference.files) | set(result)):
            if name not in reference.files or name not in result:
                print(f'{name}: only in one of the two')
                return 1
            expected = reference[name].astype(np.float64)
            difference = float(np.max(np.abs(expected - result[name].astype(np.float64))))
            worst = max(worst, difference)
            print(f'{name}: max |difference| {difference:.3g}')
    print(f'worst {worst:.3g}')
    return 0 if worst <= 1e-6 else 1


if __name__ == '__main__':
    sys.exit(main())
