"""
Exact synthetic RGB-D scenes: coloured boxes ray-cast with open3d's RaycastingScene.

Depth is the exact planar z of the first surface hit at each pixel centre; colour comes from
the box that was hit, modulated by a checkerboard in the face's own plane, so views of the same
surface agree wherever they overlap. Used by the memory tests and benchmarks (no simulator
needed): a room with occluders, and a maze of corridors with a tour through it.
"""

from dataclasses import dataclass
import math
import typing

from mowm_ros import geometry
import numpy as np
import open3d as o3d

SKY_RGB = (150, 190, 235)
PALETTE = np.array([[200, 60, 50], [60, 150, 70], [60, 90, 200], [220, 180, 40],
                    [160, 70, 170], [40, 170, 180], [230, 120, 40], [120, 120, 120],
                    [180, 140, 100], [90, 60, 40]], np.uint8)


@dataclass
class Box:
    minimum: tuple   # (x, y, z) metres
    maximum: tuple
    rgb: tuple       # uint8 colour


@dataclass
class Frame:
    rgb: np.ndarray    # uint8 (H, W, 3)
    depth: np.ndarray  # float32 (H, W) planar z metres, NaN where no surface was hit
    pose: np.ndarray   # 4x4 world <- optical camera
    K: np.ndarray      # 3x3


class BoxScene:
    """Axis-aligned coloured boxes that render exact RGB-D frames from any camera pose."""

    def __init__(self, boxes, checker_size=0.25, checker_contrast=0.25) -> None:
        self.boxes = list(boxes)
        self.checker_size = checker_size
        self.checker_contrast = checker_contrast
        self._scene = o3d.t.geometry.RaycastingScene()
        for box in self.boxes:
            low = np.asarray(box.minimum, np.float64)
            size = np.asarray(box.maximum, np.float64) - low
            mesh = o3d.t.geometry.TriangleMesh.create_box(*size)
            self._scene.add_triangles(mesh.translate(low))
        self._colours = np.array([box.rgb for box in self.boxes] + [SKY_RGB], np.float32)

    def render(self, pose, K, width, height, depth_noise=0.0, dropout=0.0, rng=None) -> Frame:
        """
        Ray-cast the frame seen from ``pose`` (world <- optical camera) with intrinsics ``K``.

        ``depth_noise`` adds Gaussian noise of that many metres per metre squared of depth
        and ``dropout`` invalidates that share of depth pixels (NaN), as RGB-D sensors do.
        """
        pose = geometry.check_pose(pose)
        K = geometry.check_intrinsics(K)
        # open3d puts pixel centres at u + 0.5; the package at integer u (centre (w-1)/2).
        shifted = K.copy()
        shifted[:2, 2] += 0.5
        rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(
            o3d.core.Tensor(shifted), o3d.core.Tensor(geometry.invert_pose(pose)), width, height)
        hits = self._scene.cast_rays(rays)
        # Ray directions have unit z in the camera, so the ray parameter is the planar depth.
        depth = hits['t_hit'].numpy().reshape(-1)
        hit = np.isfinite(depth)
        rays = rays.numpy().reshape(-1, 6)[hit]
        points = rays[:, :3] + rays[:, 3:] * depth[hit, None]
        box = hits['geometry_ids'].numpy().reshape(-1)[hit].astype(np.int64)
        normal_axis = np.abs(hits['primitive_normals'].numpy().reshape(-1, 3)[hit]).argmax(axis=1)
        cells = np.floor(points / np.float32(self.checker_size)).astype(np.int64)
        cells[np.arange(len(cells)), normal_axis] = 0
        shade = np.where(cells.sum(axis=1) % 2 == 1, np.float32(1.0 - self.checker_contrast),
                         np.float32(1.0))
        colour = np.broadcast_to(self._colours[-1], (width * height, 3)).copy()
        colour[hit] = self._colours[box] * shade[:, None]
        rgb = np.rint(colour).astype(np.uint8).reshape(height, width, 3)
        depth = np.where(hit, depth, np.float32(np.nan)).reshape(height, width)
        if depth_noise > 0 or dropout > 0:
            rng = rng if rng is not None else np.random.default_rng(0)
            noise = rng.standard_normal(depth.shape, dtype=np.float32)
            depth = depth + np.float32(depth_noise) * depth * depth * noise
            depth[rng.random(depth.shape, dtype=np.float32) < dropout] = np.nan
        return Frame(rgb, depth, pose, K)


def room_scene(size=(6.0, 5.0), wall_height=2.5, seed=0) -> BoxScene:
    """Build a room: a floor, four walls of different colours and a few boxes as occluders."""
    rng = np.random.default_rng(seed)
    width, depth = size
    wall = 0.1
    boxes = [Box((-1.0, -1.0, -0.1), (width + 1.0, depth + 1.0, 0.0), (170, 160, 150)),
             Box((-wall, 0.0, 0.0), (0.0, depth, wall_height), tuple(PALETTE[0])),
             Box((width, 0.0, 0.0), (width + wall, depth, wall_height), tuple(PALETTE[1])),
             Box((-wall, -wall, 0.0), (width + wall, 0.0, wall_height), tuple(PALETTE[2])),
             Box((-wall, depth, 0.0), (width + wall, depth + wall, wall_height),
                 tuple(PALETTE[3]))]
    for index in range(4):
        x, y = rng.uniform(1.0, width - 1.5), rng.uniform(1.0, depth - 1.5)
        side, tall = rng.uniform(0.3, 0.7), rng.uniform(0.4, 1.5)
        boxes.append(Box((x, y, 0.0), (x + side, y + side, tall), tuple(PALETTE[4 + index])))
    return BoxScene(boxes)


@dataclass
class Maze:
    scene: BoxScene
    cell_size: float
    cells: tuple            # (columns, rows)
    tour: list              # (column, row) cells of a depth-first walk, backtracking included

    def cell_centre(self, cell) -> tuple:
        return ((cell[0] + 0.5) * self.cell_size, (cell[1] + 0.5) * self.cell_size)


def maze_scene(cells=(8, 8), cell_size=3.0, wall_height=2.5, seed=0) -> Maze:
    """Build a perfect maze (randomised depth-first search) of walls, with its tour."""
    columns, rows = cells
    rng = np.random.default_rng(seed)
    open_walls = set()
    tour = [(0, 0)]
    visited = {(0, 0)}
    stack = [(0, 0)]
    while stack:
        x, y = stack[-1]
        neighbours = [(x + dx, y + dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))
                      if 0 <= x + dx < columns and 0 <= y + dy < rows
                      and (x + dx, y + dy) not in visited]
        if neighbours:
            following = neighbours[rng.integers(len(neighbours))]
            open_walls.add(frozenset(((x, y), following)))
            visited.add(following)
            stack.append(following)
        else:
            stack.pop()
            if not stack:
                break
        tour.append(stack[-1])

    thickness = 0.1
    boxes = [Box((-1.0, -1.0, -0.1), (columns * cell_size + 1.0, rows * cell_size + 1.0, 0.0),
                 (170, 160, 150))]

    def wall(x0, y0, x1, y1):
        colour = tuple(PALETTE[rng.integers(len(PALETTE))])
        boxes.append(Box((x0, y0, 0.0), (x1, y1, wall_height), colour))

    for x in range(columns + 1):
        for y in range(rows):
            if 0 < x < columns and frozenset(((x - 1, y), (x, y))) in open_walls:
                continue
            wall(x * cell_size - thickness / 2, y * cell_size, x * cell_size + thickness / 2,
                 (y + 1) * cell_size)
    for y in range(rows + 1):
        for x in range(columns):
            if 0 < y < rows and frozenset(((x, y - 1), (x, y))) in open_walls:
                continue
            wall(x * cell_size, y * cell_size - thickness / 2, (x + 1) * cell_size,
                 y * cell_size + thickness / 2)
    return Maze(BoxScene(boxes), cell_size, (columns, rows), tour)


def tour_poses(maze, speed=1.0, turn_rate=1.5, rate_hz=30.0, height=0.5,
               laps=1) -> typing.Iterator[np.ndarray]:
    """
    Yield camera poses at ``rate_hz`` walking the maze tour: turn on the spot, then drive.

    ``speed`` is in m/s and ``turn_rate`` in rad/s; ``laps`` repeats the tour (forwards then
    backwards) so later laps revisit everything.
    """
    step, turn_step = speed / rate_hz, turn_rate / rate_hz
    tour = list(maze.tour)
    path = []
    for lap in range(laps):
        path.extend(tour if lap % 2 == 0 else tour[::-1])
    x, y = maze.cell_centre(path[0])
    yaw = 0.0
    for cell in path[1:]:
        target_x, target_y = maze.cell_centre(cell)
        heading = math.atan2(target_y - y, target_x - x)
        while True:
            error = float(geometry.wrap_angle(heading - yaw))
            if abs(error) <= turn_step:
                yaw = heading
                break
            yaw += math.copysign(turn_step, error)
            yield geometry.camera_pose_from_planar(x, y, yaw, height)
        while math.hypot(target_x - x, target_y - y) > step:
            x += step * math.cos(heading)
            y += step * math.sin(heading)
            yield geometry.camera_pose_from_planar(x, y, yaw, height)
        x, y = target_x, target_y
        yield geometry.camera_pose_from_planar(x, y, yaw, height)
