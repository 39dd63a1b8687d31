"""
Voxel keys: one sortable int64 per voxel, grouped into cubic chunks for view culling.

A voxel's integer coordinates (i, j, k) are split into a chunk coordinate (the high bits) and a
position inside the chunk (``CHUNK_BITS`` low bits per axis). The key packs the chunk first,
so sorting voxels by key groups every chunk into one contiguous run: the spatial memory finds
a voxel with a binary search and the points of a visible chunk as one slice.
"""

import numpy as np

CHUNK_BITS = 5                      # a chunk is 32 x 32 x 32 voxels
CHUNK_VOXELS = 1 << CHUNK_BITS
AXIS_CHUNK_BITS = 16                # chunk coordinates per axis, signed
COORDINATE_LIMIT = 1 << (AXIS_CHUNK_BITS + CHUNK_BITS - 1)   # |voxel coordinate| bound
LOCAL_BITS = 3 * CHUNK_BITS
_CHUNK_OFFSET = 1 << (AXIS_CHUNK_BITS - 1)
_CHUNK_MASK = (1 << AXIS_CHUNK_BITS) - 1
_LOCAL_MASK = CHUNK_VOXELS - 1


def voxel_coordinates(points, voxel_size) -> np.ndarray:
    """Integer voxel coordinates (N, 3) int64 of points (N, 3); voxel (0, 0, 0) is [0, s)^3."""
    return np.floor(np.asarray(points, dtype=np.float64) / voxel_size).astype(np.int64)


def representable(coordinates) -> np.ndarray:
    """Mask of voxel coordinates that fit in a key (about +-52 km at 5 cm voxels)."""
    return np.all((coordinates >= -COORDINATE_LIMIT) & (coordinates < COORDINATE_LIMIT), axis=1)


def pack_keys(coordinates) -> np.ndarray:
    """Sortable int64 keys of representable voxel coordinates (N, 3)."""
    chunk = (coordinates >> CHUNK_BITS) + _CHUNK_OFFSET
    local = coordinates & _LOCAL_MASK
    return ((chunk[:, 0] << (2 * AXIS_CHUNK_BITS + LOCAL_BITS))
            | (chunk[:, 1] << (AXIS_CHUNK_BITS + LOCAL_BITS))
            | (chunk[:, 2] << LOCAL_BITS)
            | (local[:, 0] << (2 * CHUNK_BITS))
            | (local[:, 1] << CHUNK_BITS)
            | local[:, 2])


def unpack_keys(keys) -> np.ndarray:
    """Voxel coordinates (N, 3) int64 of keys: the inverse of pack_keys."""
    keys = np.asarray(keys, dtype=np.int64)
    chunk = chunk_coordinates(chunk_ids(keys))
    local = np.stack([(keys >> (2 * CHUNK_BITS)) & _LOCAL_MASK,
                      (keys >> CHUNK_BITS) & _LOCAL_MASK,
                      keys & _LOCAL_MASK], axis=1)
    return (chunk << CHUNK_BITS) + local


def chunk_ids(keys) -> np.ndarray:
    """Return the chunk part of voxel keys: one value per chunk, ordered like the keys."""
    return np.asarray(keys, dtype=np.int64) >> LOCAL_BITS


def chunk_coordinates(ids) -> np.ndarray:
    """Chunk coordinates (N, 3) int64 of chunk ids."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.stack([((ids >> (2 * AXIS_CHUNK_BITS)) & _CHUNK_MASK) - _CHUNK_OFFSET,
                     ((ids >> AXIS_CHUNK_BITS) & _CHUNK_MASK) - _CHUNK_OFFSET,
                     (ids & _CHUNK_MASK) - _CHUNK_OFFSET], axis=1)


def chunk_runs(sorted_keys) -> tuple:
    """Chunk ids present in ``sorted_keys`` and the (M + 1,) offsets of their runs."""
    ids = chunk_ids(sorted_keys)
    if len(ids) == 0:
        return np.zeros(0, np.int64), np.zeros(1, np.int64)
    starts = np.flatnonzero(np.diff(ids)) + 1
    offsets = np.concatenate([[0], starts, [len(ids)]]).astype(np.int64)
    return ids[offsets[:-1]], offsets


def chunks_in_view(ids, voxel_size, pose, K, width, height, near, far,
                   margin_pixels=0) -> np.ndarray:
    """
    Mask of chunks whose bounding sphere meets the camera's view frustum.

    Conservative: a chunk holding any point that projects into the image (widened by
    ``margin_pixels``) between ``near`` and ``far`` is always kept.
    """
    chunk_size = voxel_size * CHUNK_VOXELS
    centres = (chunk_coordinates(ids) + 0.5) * chunk_size
    radius = 0.5 * np.sqrt(3.0) * chunk_size
    rotation, centre = pose[:3, :3], pose[:3, 3]
    x, y, z = ((centres - centre) @ rotation).T
    keep = (z > near - radius) & (z < far + radius)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    # Image borders as slopes x/z and y/z; a sphere meets the half-space a*z <= x when
    # the signed distance (x - a*z) / sqrt(1 + a^2) exceeds -radius.
    left = (-0.5 - margin_pixels - cx) / fx
    right = (width - 0.5 + margin_pixels - cx) / fx
    top = (-0.5 - margin_pixels - cy) / fy
    bottom = (height - 0.5 + margin_pixels - cy) / fy
    for coordinate, slope, sign in ((x, left, 1.0), (x, right, -1.0),
                                    (y, top, 1.0), (y, bottom, -1.0)):
        keep &= sign * (coordinate - slope * z) / np.sqrt(1.0 + slope * slope) > -radius
    return keep


def selected_runs(offsets, selected) -> list:
    """(start, stop) row ranges covering the selected runs, adjacent runs joined."""
    selected = np.asarray(selected, bool)
    if not selected.any():
        return []
    edges = np.diff(np.concatenate([[False], selected, [False]]).astype(np.int8))
    first = np.flatnonzero(edges == 1)
    last = np.flatnonzero(edges == -1)
    return list(zip(offsets[first].tolist(), offsets[last].tolist()))
