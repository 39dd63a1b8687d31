"""
Z-buffered point splatting: the re-projection of a coloured point set into a camera view.

It sits beside ``geometry`` (below ``data`` and ``memory``) because both the training datasets
and the spatial memory render points the same way.
"""

from dataclasses import dataclass

from mowm_ros import geometry
import numpy as np


@dataclass
class RenderedView:
    rgb: np.ndarray    # uint8 (H, W, 3), zero where nothing was rendered
    depth: np.ndarray  # float32 (H, W) metres along the optical axis, NaN where empty
    mask: np.ndarray   # bool (H, W) coverage

    @property
    def coverage(self):
        return float(self.mask.mean())


def splat_radius(z, focal, point_size, max_radius):
    """Pixel radius that covers a world square of side ``point_size`` seen at depth ``z``."""
    return np.clip(np.floor(0.5 * focal * point_size / z), 0, max_radius).astype(np.int64)


def render_points(points, colors, pose, K, width, height, point_size=0.0, max_radius=2,
                  near=0.05, far=np.inf):
    """
    Render world ``points`` (N, 3) with ``colors`` (N, 3) uint8 from the camera at ``pose``.

    Each point covers a square of pixels whose half-side grows as it comes nearer
    (``point_size`` metres wide, at most ``max_radius`` pixels); the nearest point wins each
    pixel (z-buffer), so occluded points never show through nearer surfaces.
    """
    empty = RenderedView(np.zeros((height, width, 3), np.uint8),
                         np.full((height, width), np.nan, np.float32),
                         np.zeros((height, width), bool))
    if len(points) == 0:
        return empty
    uv, z = geometry.project_points(np.asarray(points, dtype=np.float64), K, pose)
    margin = max_radius + 1
    visible = ((z > near) & (z < far) & (uv[:, 0] > -margin) & (uv[:, 0] < width + margin)
               & (uv[:, 1] > -margin) & (uv[:, 1] < height + margin))
    if not visible.any():
        return empty
    u = np.round(uv[visible, 0]).astype(np.int64)
    v = np.round(uv[visible, 1]).astype(np.int64)
    z = z[visible]
    colors = np.asarray(colors)[visible]
    radius = splat_radius(z, K[0, 0], point_size, max_radius) if point_size > 0 else \
        np.zeros(len(z), np.int64)

    pixel_chunks, depth_chunks, source_chunks = [], [], []
    reach = int(radius.max())
    for dv in range(-reach, reach + 1):
        for du in range(-reach, reach + 1):
            chosen = np.nonzero(radius >= max(abs(du), abs(dv)))[0]
            pu, pv = u[chosen] + du, v[chosen] + dv
            inside = (pu >= 0) & (pu < width) & (pv >= 0) & (pv < height)
            pixel_chunks.append(pv[inside] * width + pu[inside])
            depth_chunks.append(z[chosen[inside]])
            source_chunks.append(chosen[inside])
    pixels = np.concatenate(pixel_chunks)
    if len(pixels) == 0:
        return empty
    depths = np.concatenate(depth_chunks)
    sources = np.concatenate(source_chunks)
    # Nearest first within each pixel; np.unique keeps the first occurrence.
    order = np.lexsort((depths, pixels))
    first_pixels, first = np.unique(pixels[order], return_index=True)
    winners = order[first]
    view = empty
    view.rgb.reshape(-1, 3)[first_pixels] = colors[sources[winners]]
    view.depth.reshape(-1)[first_pixels] = depths[winners]
    view.mask.reshape(-1)[first_pixels] = True
    return view
