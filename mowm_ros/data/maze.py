"""
The Memory Maze grid: cells <-> world coordinates, and shortest paths between cells.

Memory Maze's ``maze_layout`` is an (N, N) uint8 array, 1 for a free cell, without the outer
walls, flipped so that ``layout[0, 0]`` is the bottom-left cell (smallest world x and y).
A cell is addressed as (column, row) = (x, y). ``agent_pos`` is in *grid* coordinates: the
cell (x, y) spans [x, x + 1) x [y, y + 1), so its centre is (x + 0.5, y + 0.5). The world
(metres, z up, origin at the maze centre) is the grid scaled by the cell size (2 m) and
shifted by half the maze: ``world = (grid - N / 2) * cell_size`` (memory_maze/wrappers.py,
AgentPositionWrapper, with the arena's ``xy_scale`` 2.0).
"""

from collections import deque
from dataclasses import dataclass

import numpy as np

CELL_SIZE = 2.0
NEIGHBOURS = ((1, 0), (0, 1), (-1, 0), (0, -1))


@dataclass(frozen=True)
class MazeGrid:
    layout: np.ndarray           # uint8 (rows, columns), 1 = free
    cell_size: float = CELL_SIZE

    @property
    def shape(self):
        """(columns, rows): the grid's extent along x and y."""
        return self.layout.shape[1], self.layout.shape[0]

    def grid_from_world(self, xy):
        """Grid coordinates (as ``agent_pos``) of world points (..., 2)."""
        return np.asarray(xy, dtype=np.float64) / self.cell_size + np.array(self.shape) / 2.0

    def world_from_grid(self, grid):
        return (np.asarray(grid, dtype=np.float64) - np.array(self.shape) / 2.0) * self.cell_size

    def cell_centre_world(self, cell):
        return self.world_from_grid(np.asarray(cell, dtype=np.float64) + 0.5)

    @staticmethod
    def cell_of_grid(grid):
        """Integer cell (x, y) holding grid point ``grid``."""
        x, y = np.floor(np.asarray(grid, dtype=np.float64)).astype(int)
        return int(x), int(y)

    def is_free(self, cell):
        x, y = cell
        columns, rows = self.shape
        return 0 <= x < columns and 0 <= y < rows and bool(self.layout[y, x])

    def free_cells(self):
        rows, columns = np.nonzero(self.layout)
        return [(int(x), int(y)) for x, y in zip(columns, rows)]

    def neighbours(self, cell):
        x, y = cell
        return [(x + dx, y + dy) for dx, dy in NEIGHBOURS if self.is_free((x + dx, y + dy))]

    def distances_from(self, start):
        """Breadth-first step counts from ``start`` to every reachable cell, as a dict."""
        distances = {start: 0}
        queue = deque([start])
        while queue:
            cell = queue.popleft()
            for other in self.neighbours(cell):
                if other not in distances:
                    distances[other] = distances[cell] + 1
                    queue.append(other)
        return distances

    def shortest_path(self, start, goal):
        """Cells from ``start`` to ``goal`` inclusive (4-connected), or None if unreachable."""
        if not (self.is_free(start) and self.is_free(goal)):
            return None
        previous = {start: None}
        queue = deque([start])
        while queue:
            cell = queue.popleft()
            if cell == goal:
                path = [cell]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return path[::-1]
            for other in self.neighbours(cell):
                if other not in previous:
                    previous[other] = cell
                    queue.append(other)
        return None
