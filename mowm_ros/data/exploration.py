"""
An exploration policy for Memory Maze that makes episodes a memory benchmark can use.

It plans breadth-first shortest paths over the maze layout between chosen cells: a few
*anchor* cells spread over the maze (farthest-point sampling on path distance) are visited,
left, and returned to later, each time approached from another side when the maze allows, with
random goals in between; on arrival it sometimes turns in place to look around. A small
controller turns toward the next waypoint (a cell centre) and drives forward, so the camera
looks along corridors rather than at walls. Everything is deterministic per seed.
"""

from collections import deque
from dataclasses import dataclass
import math

from mowm_ros.data.maze import MazeGrid
import numpy as np

# Memory Maze's discrete actions (memory_maze/tasks.py, DiscreteActionSetWrapper).
NOOP, FORWARD, LEFT, RIGHT, FORWARD_LEFT, FORWARD_RIGHT = range(6)
ACTION_NAMES = ('noop', 'forward', 'left', 'right', 'forward_left', 'forward_right')


@dataclass
class ExplorationConfig:
    anchors: int = 0                 # anchor cells; 0 = one per 8 free cells, at least 3
    p_return: float = 0.4            # next goal: an anchor visited before, from another side
    p_random_goal: float = 0.2       # next goal: any free cell
    p_look_around: float = 0.3       # on arrival, turn in place 180-360 degrees
    turn_in_place: float = 0.6       # rad: larger heading errors turn without moving
    steer: float = 0.15              # rad: larger errors move forward while turning
    arrive_radius: float = 0.25      # cells: reaching a waypoint where the path bends
    pass_radius: float = 0.5         # cells: passing a waypoint on a straight stretch
    stuck_steps: int = 12            # steps without progress before re-planning


def wrap(angle):
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


class ExplorationPolicy:
    """Choose Memory Maze actions from ``agent_pos`` (grid units) and ``agent_dir``."""

    def __init__(self, grid: MazeGrid, seed, config=None):
        self.grid = grid
        self.config = config or ExplorationConfig()
        self.rng = np.random.default_rng(seed)
        self.anchors = []
        self.visited_anchors = []
        self.entered_from = {}        # goal cell -> the cell it was last entered from
        self.goal = None
        self.goals = []               # every goal chosen, in order (for inspection and tests)
        self.path = []                # cells still to reach; path[0] is the next waypoint
        self.path_history = []        # cells reached since the current goal was chosen
        self.spin = deque()
        self.best_distance = math.inf
        self.steps_without_progress = 0

    # Schedule ---------------------------------------------------------------------------

    def _choose_anchors(self, start):
        free = self.grid.free_cells()
        count = self.config.anchors or max(3, len(free) // 8)
        distance_maps = [self.grid.distances_from(start)]
        reachable = [cell for cell in free if cell in distance_maps[0]]
        while len(self.anchors) < min(count, len(reachable) - 1):
            nearest = np.array([min(d.get(cell, 0) for d in distance_maps) for cell in reachable])
            # Among the cells farthest from every anchor so far, pick one at random.
            candidates = np.nonzero(nearest >= max(1, nearest.max() - 1))[0]
            anchor = reachable[int(self.rng.choice(candidates))]
            self.anchors.append(anchor)
            distance_maps.append(self.grid.distances_from(anchor))

    def _next_goal(self, current):
        """Return (goal, via): the next goal cell and a cell to approach it through, or None."""
        config = self.config
        unvisited = [a for a in self.anchors if a not in self.visited_anchors]
        returnable = [a for a in self.visited_anchors if a != current]
        draw = self.rng.random()
        if draw >= config.p_random_goal and returnable and \
                (draw < config.p_random_goal + config.p_return or not unvisited):
            goal = returnable[int(self.rng.integers(len(returnable)))]
            return goal, self._other_side(current, goal)
        if draw >= config.p_random_goal and unvisited:
            return unvisited[0], None
        free = [c for c in self.grid.free_cells() if c != current]
        return free[int(self.rng.integers(len(free)))], None

    def _other_side(self, current, goal):
        """Return a neighbour of ``goal`` to arrive through, unlike last time, or None."""
        last = self.entered_from.get(goal)
        sides = [n for n in self.grid.neighbours(goal) if n != last]
        self.rng.shuffle(sides)
        for side in sides:
            route = self.grid.shortest_path(current, side)
            if route is not None and goal not in route:
                return side
        return None

    def _plan(self, current):
        goal, via = self._next_goal(current)
        route = self.grid.shortest_path(current, via if via is not None else goal)
        if route is None:          # unreachable (never in Memory Maze): stay where it is
            goal, via, route = current, None, [current]
        if via is not None:
            route = route + [goal]
        self.goal = goal
        self.goals.append(goal)
        self.path = route
        self._reset_progress()

    def _replan(self, current):
        route = self.grid.shortest_path(current, self.goal) or [current]
        self.path = route
        self._reset_progress()

    def _arrive(self):
        if len(self.path_history) >= 2:
            self.entered_from[self.goal] = self.path_history[-2]
        if self.goal in self.anchors and self.goal not in self.visited_anchors:
            self.visited_anchors.append(self.goal)
        if self.rng.random() < self.config.p_look_around:
            turns = int(self.rng.integers(10, 21))   # about 0.32 rad per step: 180-360 deg
            self.spin.extend([LEFT if self.rng.random() < 0.5 else RIGHT] * turns)
        self.goal = None

    # Control ----------------------------------------------------------------------------

    def _reset_progress(self):
        self.best_distance = math.inf
        self.steps_without_progress = 0

    def _waypoint_radius(self):
        if len(self.path) < 2 or len(self.path_history) < 1:
            return self.config.arrive_radius
        previous, here, after = self.path_history[-1], self.path[0], self.path[1]
        straight = (here[0] - previous[0], here[1] - previous[1]) == \
            (after[0] - here[0], after[1] - here[1])
        return self.config.pass_radius if straight else self.config.arrive_radius

    def act(self, agent_pos, agent_dir):
        """Return the discrete action for the agent at ``agent_pos`` facing ``agent_dir``."""
        position = np.asarray(agent_pos, dtype=np.float64)
        current = self.grid.cell_of_grid(position)
        if not self.anchors:
            self._choose_anchors(current)
        if self.spin:
            return self.spin.popleft()
        for _ in range(4):
            if self.goal is None:
                self.path_history = [current]
                self._plan(current)
            target = np.array(self.path[0]) + 0.5
            distance = float(np.linalg.norm(target - position))
            if distance > self._waypoint_radius():
                break
            self.path_history.append(self.path.pop(0))
            self._reset_progress()
            if not self.path:
                self._arrive()
                if self.spin:
                    return self.spin.popleft()
        else:
            return NOOP
        if distance < self.best_distance - 0.05:
            self.best_distance, self.steps_without_progress = distance, 0
        else:
            self.steps_without_progress += 1
            if self.steps_without_progress > self.config.stuck_steps:
                self._replan(current)
                return LEFT if self.rng.random() < 0.5 else RIGHT
        heading = math.atan2(agent_dir[1], agent_dir[0])
        error = wrap(math.atan2(target[1] - position[1], target[0] - position[0]) - heading)
        if abs(error) > self.config.turn_in_place:
            return LEFT if error > 0 else RIGHT
        if abs(error) > self.config.steer:
            return FORWARD_LEFT if error > 0 else FORWARD_RIGHT
        return FORWARD
