"""
Camera frames to model frames: centred square crop, resize, and the matching intrinsics.

Colour is resampled by area averaging, depth by nearest neighbour.

One implementation for every path into the model: the rosbag import, the training dataset, the
world model's ``observe``, the node's goal images and the evaluation all call these, so a
non-square camera (96x72, 640x480) is seen the same way everywhere.
"""

from mowm_ros import geometry
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


def square_crop_box(width, height):
    """(left, top, side) of the centred square crop of a width x height image."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side


def _square(image):
    height, width = image.shape[:2]
    left, top, side = square_crop_box(width, height)
    return np.ascontiguousarray(image[top:top + side, left:left + side])


def model_intrinsics(K, width, height, size):
    """Intrinsics of the centred square crop of the camera, resampled to size x size."""
    left, top, side = square_crop_box(width, height)
    cropped = np.array(K, dtype=np.float64)
    cropped[0, 2] -= left
    cropped[1, 2] -= top
    return geometry.scale_intrinsics(cropped, (side, side), (size, size))


def to_model_frame(rgb, size):
    """RGB uint8 (H, W, 3) of any size -> uint8 (size, size, 3), centre-cropped, area-averaged."""
    return resize_rgb(_square(rgb), size)


def to_model_depth(depth, size):
    """Depth (H, W) of any size -> (size, size), centre-cropped, nearest neighbour."""
    return resize_depth(_square(depth), size)
