"""Model frames to and from tensors (the crop and resize to model frames: data/resize.py)."""

import numpy as np
import torch


def images_to_tensor(images, device='cpu') -> torch.Tensor:
    """Convert uint8 (..., H, W, 3) to float (..., 3, H, W) in [-1, 1]."""
    tensor = torch.as_tensor(np.asarray(images), device=device)
    return tensor.movedim(-1, -3).float() / 127.5 - 1.0


def render_to_tensor(rgb, mask, device='cpu') -> torch.Tensor:
    """
    Convert memory renders to the network's input: float (..., 4, H, W).

    ``rgb`` uint8 (..., H, W, 3) and coverage ``mask`` bool (..., H, W): colours in [-1, 1],
    0 (mid-grey) where uncovered, as in training, and the mask as the 4th channel.
    """
    mask = torch.as_tensor(np.asarray(mask), device=device).float().unsqueeze(-3)
    return torch.cat([images_to_tensor(rgb, device) * mask, mask], dim=-3)


def tensor_to_images(tensor) -> np.ndarray:
    """Convert float (..., 3, H, W) in [-1, 1] to uint8 (..., H, W, 3)."""
    return ((tensor.float().clamp(-1, 1) + 1) * 127.5).round().byte().movedim(-3, -1).cpu() \
        .numpy()
