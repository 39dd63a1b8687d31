import math

from mowm_ros.data import exploration
from mowm_ros.data.exploration import ExplorationConfig, ExplorationPolicy
from mowm_ros.data.maze import MazeGrid
import numpy as np

# Row 0 is the bottom row (world y smallest), as in Memory Maze's maze_layout. Loops, so a
# cell can be reached from several sides.
LAYOUT = np.array([
    [1, 1, 1, 1, 1, 1, 1, 1, 1],
    [1, 0, 1, 0, 0, 0, 1, 0, 1],
    [1, 1, 1, 1, 1, 1, 1, 1, 1],
    [1, 0, 0, 0, 1, 0, 0, 0, 1],
    [1, 1, 1, 1, 1, 1, 1, 1, 1],
    [0, 0, 1, 0, 1, 0, 1, 0, 0],
    [1, 1, 1, 1, 1, 1, 1, 1, 1],
    [1, 0, 1, 0, 0, 0, 1, 0, 1],
    [1, 1, 1, 1, 1, 1, 1, 1, 1],
], dtype=np.uint8)


def test_cells_and_world_coordinates_follow_memory_maze():
    grid = MazeGrid(LAYOUT)
    # memory_maze: agent_pos = world_xy / 2 + 4.5 for a 9x9 maze.
    np.testing.assert_allclose(grid.grid_from_world([-9.0, 9.0]), [0.0, 9.0])
    np.testing.assert_allclose(grid.cell_centre_world((0, 0)), [-8.0, -8.0])
    np.testing.assert_allclose(grid.cell_centre_world((4, 4)), [0.0, 0.0])
    np.testing.assert_allclose(grid.world_from_grid(grid.grid_from_world([1.3, -2.7])),
                               [1.3, -2.7])
    assert grid.cell_of_grid([3.99, 0.01]) == (3, 0)
    assert grid.is_free((1, 0)) and not grid.is_free((1, 1)) and not grid.is_free((-1, 0))
    assert not grid.is_free((0, 5))    # row 5, column 0 is a wall


def test_shortest_paths_are_4_connected_and_free():
    grid = MazeGrid(LAYOUT)
    path = grid.shortest_path((0, 0), (8, 8))
    assert path[0] == (0, 0) and path[-1] == (8, 8) and len(path) == 17
    for a, b in zip(path, path[1:]):
        assert abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 and grid.is_free(b)
    assert grid.shortest_path((0, 0), (1, 1)) is None           # a wall
    assert grid.distances_from((0, 0))[(8, 8)] == 16


class KinematicAgent:
    """
    A rough stand-in for Memory Maze's ball.

    0.25 cells per forward step, 0.32 rad per turn step, blocked by walls.
    """

    def __init__(self, grid, cell, yaw):
        self.grid, self.position, self.yaw = grid, np.array(cell, float) + 0.5, yaw

    def step(self, action):
        forward = {exploration.FORWARD: 0.25, exploration.FORWARD_LEFT: 0.2,
                   exploration.FORWARD_RIGHT: 0.2}.get(action, 0.0)
        turn = {exploration.LEFT: 0.32, exploration.RIGHT: -0.32,
                exploration.FORWARD_LEFT: 0.2, exploration.FORWARD_RIGHT: -0.2}.get(action, 0.0)
        self.yaw += turn
        moved = self.position + forward * np.array([math.cos(self.yaw), math.sin(self.yaw)])
        # The ball (radius 0.15 cells) may not overlap a wall cell.
        corners = moved + 0.15 * np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]])
        if all(self.grid.is_free(self.grid.cell_of_grid(c)) for c in corners):
            self.position = moved

    @property
    def direction(self):
        return np.array([math.cos(self.yaw), math.sin(self.yaw)])


def run_policy(seed, steps=1000, config=None):
    grid = MazeGrid(LAYOUT)
    agent = KinematicAgent(grid, (4, 4), 0.3)
    policy = ExplorationPolicy(grid, seed, config)
    cells, actions = [], []
    for _ in range(steps):
        action = policy.act(agent.position, agent.direction)
        agent.step(action)
        cells.append(grid.cell_of_grid(agent.position))
        actions.append(action)
    return grid, policy, cells, actions


def test_policy_travels_leaves_and_returns_from_other_sides():
    grid, policy, cells, actions = run_policy(seed=3)
    free = grid.free_cells()
    assert all(grid.is_free(cell) for cell in cells)
    assert len(set(cells)) >= 0.8 * len(free)
    moving = np.isin(actions, [exploration.FORWARD, exploration.FORWARD_LEFT,
                               exploration.FORWARD_RIGHT])
    assert moving.mean() > 0.5
    # Anchors are visited, left and returned to: most have several separate visits.
    returned = 0
    for anchor in policy.visited_anchors:
        inside = np.array([cell == anchor for cell in cells])
        returned += np.count_nonzero(inside[1:] & ~inside[:-1]) >= 2
    assert len(policy.visited_anchors) >= 3 and returned >= len(policy.visited_anchors) / 2
    # At least one anchor was entered from two different neighbouring cells.
    entries = {}
    for previous, cell in zip(cells, cells[1:]):
        if cell != previous and cell in policy.anchors:
            entries.setdefault(cell, set()).add(previous)
    assert max(len(sides) for sides in entries.values()) >= 2


def test_policy_is_deterministic_per_seed_and_differs_across_seeds():
    _, _, cells_a, actions_a = run_policy(seed=5, steps=300)
    _, _, cells_b, actions_b = run_policy(seed=5, steps=300)
    _, _, _, actions_c = run_policy(seed=6, steps=300)
    assert actions_a == actions_b and cells_a == cells_b
    assert actions_a != actions_c


def test_policy_looks_around_on_arrival():
    _, _, _, actions = run_policy(seed=1, steps=600, config=ExplorationConfig(p_look_around=1.0))
    turning = np.isin(actions, [exploration.LEFT, exploration.RIGHT]).astype(int)
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], turning, [0]]))))[::2]
    assert runs.max() >= 10    # a 180-360 degree turn in place
