"""Camera frames to model frames: square centre crop, resize to the model size, tensors."""

from mowm_ros import geometry
import numpy as np
import torch
import torch.nn.functional as F


def square_crop_box(width, height) -> tuple:
    """(left, top, side) of the centred square crop of a width x height image."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side


def model_intrinsics(K, width, height, size) -> np.ndarray:
    """Intrinsics of the centred square crop of the camera, resampled to size x size."""
    left, top, side = square_crop_box(width, height)
    cropped = np.array(K, dtype=np.float64)
    cropped[0, 2] -= left
    cropped[1, 2] -= top
    return geometry.scale_intrinsics(cropped, (side, side), (size, size))


def to_model_frame(rgb, size) -> np.ndarray:
    """RGB uint8 (H, W, 3) of any size -> uint8 (size, size, 3), centre-cropped, antialiased."""
    height, width = rgb.shape[:2]
    left, top, side = square_crop_box(width, height)
    square = rgb[top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(square)
    tensor = torch.from_numpy(np.ascontiguousarray(square)).permute(2, 0, 1)[None].float()
    resized = F.interpolate(tensor, size=(size, size), mode='bilinear', antialias=True,
                            align_corners=False)
    return resized[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


def images_to_tensor(images, device='cpu') -> torch.Tensor:
    """Convert uint8 (..., H, W, 3) to float (..., 3, H, W) in [-1, 1]."""
    tensor = torch.as_tensor(np.asarray(images), device=device)
    return tensor.movedim(-1, -3).float() / 127.5 - 1.0


def tensor_to_images(tensor) -> np.ndarray:
    """Convert float (..., 3, H, W) in [-1, 1] to uint8 (..., H, W, 3)."""
    return ((tensor.float().clamp(-1, 1) + 1) * 127.5).round().byte().movedim(-3, -1).cpu() \
        .numpy()
