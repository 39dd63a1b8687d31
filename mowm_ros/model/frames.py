"""Model frames to and from tensors (the crop and resize to model frames: data/resize.py)."""

import numpy as np
import torch


def images_to_tensor(images, device='cpu') -> torch.Tensor:
    """Convert uint8 (..., H, W, 3) to float (..., 3, H, W) in [-1, 1]."""
    tensor = torch.as_tensor(np.asarray(images), device=device)
    return tensor.movedim(-1, -3).float() / 127.5 - 1.0


def tensor_to_images(tensor) -> np.ndarray:
    """Convert float (..., 3, H, W) in [-1, 1] to uint8 (..., H, W, 3)."""
    return ((tensor.float().clamp(-1, 1) + 1) * 127.5).round().byte().movedim(-3, -1).cpu() \
        .numpy()
