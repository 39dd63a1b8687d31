"""Resampling of frames to the model resolution (colour by area averaging, depth by nearest)."""

import numpy as np
from PIL import Image


def resize_rgb(rgb, width, height=None):
    """Return uint8 (height, width, 3): each output pixel averages the area it covers."""
    height = height or width
    if rgb.shape[:2] == (height, width):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BOX))


def resize_depth(depth, width, height=None):
    """Return depth (height, width) by nearest neighbour: depth is never averaged across edges."""
    height = height or width
    if depth.shape == (height, width):
        return depth
    rows = ((np.arange(height) + 0.5) * depth.shape[0] / height).astype(np.int64)
    columns = ((np.arange(width) + 0.5) * depth.shape[1] / width).astype(np.int64)
    return depth[rows[:, None], columns[None, :]]
