"""
Z-buffered point splatting: the re-projection of a coloured point set into a camera view.

It sits beside ``geometry`` (below ``data`` and ``memory``) because both the training datasets
and the spatial memory render points the same way.

Every (pixel, point) candidate becomes one int64 key: the point's float32 depth bits in the
high half and its index in the low half. Positive floats order like their bit patterns, so a
per-pixel minimum of keys (``np.minimum.at``) picks the nearest point exactly, ties going to the
lower index, with no sort. Everything is single-threaded numpy on float32 columns: on a small,
busy CPU this is faster and far steadier than multi-threaded tensor code.
"""

from dataclasses import dataclass

import numpy as np

EMPTY_KEY = np.iinfo(np.int64).max
LOW_32_BITS = 0xFFFFFFFF


@dataclass
class RenderedView:
    rgb: np.ndarray    # uint8 (H, W, 3), zero where nothing was rendered
    depth: np.ndarray  # float32 (H, W) metres along the optical axis, NaN where empty
    mask: np.ndarray   # bool (H, W) coverage

    @property
    def coverage(self):
        return float(self.mask.mean())


def empty_view(width, height):
    return RenderedView(np.zeros((height, width, 3), np.uint8),
                        np.full((height, width), np.nan, np.float32),
                        np.zeros((height, width), bool))


def splat_radius(z, focal, point_size, max_radius):
    """Pixel radius that covers a world square of side ``point_size`` seen at depth ``z``."""
    return np.clip(np.floor(0.5 * focal * point_size / z), 0, max_radius).astype(np.int64)


def render_points(points, colors, pose, K, width, height, point_size=0.0, max_radius=2,
                  near=0.05, far=np.inf):
    """
    Render world ``points`` (N, 3) with ``colors`` (N, 3) uint8 from the camera at ``pose``.

    Each point covers a square of pixels whose half-side grows as it comes nearer
    (``point_size`` metres wide, at most ``max_radius`` pixels); the nearest point wins each
    pixel (z-buffer), so occluded points never show through nearer surfaces. Points may be
    float32 or float64; projection runs in float32 relative to the camera centre.
    """
    points = np.asarray(points)
    colors = np.asarray(colors)
    if points.ndim != 2 or points.shape[1] != 3 or colors.shape != points.shape:
        raise ValueError(f'points and colors must both be (N, 3), got {points.shape} and '
                         f'{colors.shape}')
    if len(points) == 0:
        return empty_view(width, height)
    pose = np.asarray(pose, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    if len(points) >= 1 << 32:
        raise ValueError(f'at most 2**32 - 1 points can be rendered at once, got {len(points)}')

    u, v, z = _project(points, pose, K)
    in_depth = z > near
    in_depth &= z < far
    # Points whose own pixel is in the image: one candidate each.
    own = _in_image(u, v, in_depth.copy(), 0, width, height)
    best = np.full(width * height, EMPTY_KEY, np.int64)
    np.minimum.at(best, _pixel_index(u[own], v[own], width, height),
                  _keys(z, np.flatnonzero(own)))
    if point_size > 0 and max_radius >= 1:
        # Only points near enough for a splat radius >= 1 cover neighbouring pixels; their
        # own pixel may lie up to max_radius outside the image.
        splat_depth = np.float32(0.5 * K[0, 0] * point_size * (1.0 + 1e-6))
        near_enough = in_depth & (z <= splat_depth)
        splatting = np.flatnonzero(_in_image(u, v, near_enough, max_radius, width, height))
        radius = splat_radius(z[splatting], K[0, 0], point_size, max_radius)
        pixels, keys = _splat(np.rint(u[splatting]).astype(np.int64),
                              np.rint(v[splatting]).astype(np.int64), _keys(z, splatting),
                              radius, width, height)
        np.minimum.at(best, pixels, keys)
    filled = np.flatnonzero(best != EMPTY_KEY)
    winners = best[filled]
    view = empty_view(width, height)
    view.mask.reshape(-1)[filled] = True
    view.depth.reshape(-1)[filled] = (winners >> 32).astype(np.int32).view(np.float32)
    view.rgb.reshape(-1, 3)[filled] = colors[winners & LOW_32_BITS]
    return view


def _in_image(u, v, mask, margin, width, height):
    """Narrow ``mask`` in place to points whose nearest pixel is within ``margin`` of the image."""
    mask &= u >= np.float32(-0.5 - margin)
    mask &= u < np.float32(width - 0.5 + margin)
    mask &= v >= np.float32(-0.5 - margin)
    mask &= v < np.float32(height - 0.5 + margin)
    return mask


def _pixel_index(u, v, width, height):
    """Flat index of the pixel nearest to each (u, v) (exact: float32 holds ints below 2^24)."""
    if width * height >= 1 << 24:
        u, v = u.astype(np.float64), v.astype(np.float64)
    np.rint(u, out=u)
    np.rint(v, out=v)
    v *= np.float32(width)
    v += u
    return v.astype(np.int64)


def _keys(z, index):
    """Z-buffer keys: float32 depth bits above the point index (see the module doc)."""
    keys = z[index].view(np.int32).astype(np.int64)
    keys <<= 32
    keys |= index
    return keys


def _project(points, pose, K):
    """Pixel coordinates u, v and depth z (float32 columns) of world points."""
    # Rows of K R^T map a camera-centred world offset to (z u, z v, z).
    projection = (K @ pose[:3, :3].T).astype(np.float32)
    offsets = np.empty((3, len(points)), np.float32)
    if points.dtype == np.float32:
        offsets[:] = points.T
        offsets -= pose[:3, 3].astype(np.float32)[:, None]
    else:   # subtract the centre before rounding to float32: far from the origin too
        offsets[:] = (points - pose[:3, 3]).T
    u, v, z = np.empty_like(offsets)
    scratch = np.empty_like(u)
    for row, out in zip(projection, (u, v, z)):
        np.multiply(offsets[0], row[0], out=out)
        out += np.multiply(offsets[1], row[1], out=scratch)
        out += np.multiply(offsets[2], row[2], out=scratch)
    with np.errstate(divide='ignore', invalid='ignore'):
        u /= z
        v /= z
    return u, v, z


def _splat(u, v, keys, radius, width, height):
    """Pixels and keys of every ring (1..radius) around each point, inside the image."""
    pixel_chunks, key_chunks = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for ring in range(1, int(radius.max(initial=0)) + 1):
        wide = radius >= ring
        u, v, keys, radius = u[wide], v[wide], keys[wide], radius[wide]
        for dv in range(-ring, ring + 1):
            for du in range(-ring, ring + 1):
                if max(abs(du), abs(dv)) == ring:
                    pu, pv = u + du, v + dv
                    inside = (pu >= 0) & (pu < width) & (pv >= 0) & (pv < height)
                    pixel_chunks.append((pv * width + pu)[inside])
                    key_chunks.append(keys[inside])
    return np.concatenate(pixel_chunks), np.concatenate(key_chunks)
