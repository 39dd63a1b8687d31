"""Run under torchrun: trains the tiny model with DDP (gloo) and writes a weight checksum."""

import json
from pathlib import Path
import sys

from mowm_ros.model.training import Trainer
from tiny_training import ShiftDataset, tiny_config
import torch
import torch.distributed as dist


def main():
    out_dir = Path(sys.argv[1])
    trainer = Trainer(tiny_config(out_dir, steps=6, checkpoint_every=100), ShiftDataset(),
                      ShiftDataset(count=8, seed=1))
    rank, world = dist.get_rank(), dist.get_world_size()
    trainer.fit(progress=False)
    checksum = sum(p.double().sum().item() for p in trainer.model.parameters())
    (out_dir / f'rank{rank}.json').write_text(json.dumps(
        {'world_size': world, 'checksum': checksum, 'step': trainer.step,
         'backend': dist.get_backend()}))
    trainer.dist.close()


if __name__ == '__main__':
    torch.set_num_threads(1)
    main()
