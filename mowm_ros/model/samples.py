"""Sample strips for eyeballing training: context, render, predictions, truth side by side."""

from pathlib import Path

from mowm_ros.model.composition import Composition, expert_set, sample_composed
from mowm_ros.model.experts import DENOISER, DenoiserEvaluator
import numpy as np
from PIL import Image
import torch


def to_uint8(images) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    array = ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return array.permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def sample_strip(model, diffusion, target, cond, path, bf16=True, steps=4, seed=0) -> Path:
    """Write one row per sample: last context | render | short-term | +spatial | truth."""
    evaluators = {DENOISER: DenoiserEvaluator(model, torch.bfloat16 if bf16 else None)}
    columns = [to_uint8(cond.context[:, -1]), to_uint8(cond.render[:, :3])]
    for names in (['short_term'], ['short_term', 'spatial']):
        composition = Composition(expert_set(names, {}))
        generator = torch.Generator(device=target.device).manual_seed(seed)
        columns.append(to_uint8(sample_composed(composition, evaluators, diffusion, cond,
                                                steps, generator)))
    columns.append(to_uint8(target))
    rows = [np.concatenate([column[i] for column in columns], axis=1)
            for i in range(target.shape[0])]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    return path
