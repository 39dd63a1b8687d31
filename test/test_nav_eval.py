"""``mowm eval navigation``: a tiny real run that resumes, and the report on known results."""

import json
import math

from mowm_ros import cli
from mowm_ros.data.maze import MazeGrid
from mowm_ros.evaluation import nav_report, navigation
from mowm_ros.evaluation.navigation import (choose_goals, maze_distances, NavEvalConfig,
                                            ROW_NAMES)
import numpy as np
import pytest


def quick_config(out_dir):
    from mowm_ros.tools.eval import quick_settings

    return NavEvalConfig(out_dir=str(out_dir), device='cpu', **quick_settings())


@pytest.mark.slow
def test_a_tiny_real_run_writes_the_report_and_resumes(tmp_path, one_thread, monkeypatch):
    pytest.importorskip('memory_maze')
    config = quick_config(tmp_path)
    results = navigation.run_navigation(config, progress=False)
    assert len(results) == 1
    result = results[0]
    assert result['seed'] == navigation.NAVIGATION_SEED_START and result['goal'] == 0
    assert list(result['rows']) == [ROW_NAMES[r] for r in config.rows]
    for name, drive in result['rows'].items():
        assert len(drive['trajectory']) == drive['steps'] + 1 <= config.step_budget + 1
        assert drive['final_distance'] >= 0 and drive['path_length'] >= 0
        assert drive['success'] == (drive['final_distance'] <= config.goal_radius)
    navigating = result['rows'][ROW_NAMES['all']]
    assert navigating['decisions'] >= 1 and navigating['localisation_views'] >= 1
    assert navigating['localisation_error'] is not None
    assert result['rows'][ROW_NAMES['explore']]['decisions'] == 0
    assert np.asarray(result['goal_rgb']).shape == (64, 64, 3)
    # Every row starts from the same restored state.
    starts = {tuple(d['trajectory'][0]) for d in result['rows'].values()}
    assert len(starts) == 1
    summary = nav_report.write_report(config, results)
    for name in ('results.json', 'results.md', 'navigation.png'):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / 'results.json').read_text())['episodes'] == 1
    assert summary['rows'][ROW_NAMES['all']]['episodes'] == 1
    # A rerun finds the finished episode and computes nothing.
    monkeypatch.setattr(navigation, 'evaluate_maze',
                        lambda *a, **k: pytest.fail('a finished episode was run again'))
    again = navigation.run_navigation(config, progress=False)
    assert again == results
    # Other settings do not reuse it.
    changed = NavEvalConfig(**{**config.__dict__, 'goal_radius': 2.0})
    assert navigation.load_result(changed, result['seed'], 0) is None


def fake_result(seed, goal, finals, steps=20, radius=1.0):
    """Return a result whose rows stopped ``finals`` metres from the goal."""
    rows = {}
    for (name, final), k in zip(finals.items(), range(len(finals))):
        navigates = name != ROW_NAMES['explore']
        rows[name] = {
            'success': final <= radius, 'final_distance': final, 'min_distance': final / 2,
            'came_within_radius': final / 2 <= radius, 'path_length': 10.0 + k,
            'steps': steps, 'spl': 0.8 if final <= radius else 0.0,
            'decisions': 5 if navigates else 0,
            'planning_ms': 200.0 if navigates else None,
            'planning_ms_after_first': 20.0 if navigates else None,
            'localisation_ms': 1000.0 if navigates else None,
            'localisation_error': final if navigates else None,
            'localisation_yaw_error': 0.1 if navigates else None,
            'reason': 'arrived' if navigates else 'budget',
            'trajectory': [[0.0, 0.0], [1.0, 0.5], [2.0, 1.0]],
            'believed_goal': [2.0, 1.0] if navigates else None, 'wall_seconds': 1.0}
    layout = np.ones((9, 9), np.uint8)
    layout[4, 2:7] = 0
    return {'seed': seed, 'goal': goal, 'signature': {'goal_radius': radius, 'step_budget': 100,
                                                      'explore_steps': 300},
            'goal_xy': [2.0, 1.2], 'goal_yaw': 0.0, 'goal_rgb': np.zeros((8, 8, 3)).tolist(),
            'start_xy': [0.0, 0.0], 'start_yaw': 0.0, 'shortest_path': 8.0,
            'layout': layout.tolist(), 'cell_size': 2.0,
            'exploration': {'seconds': 10.0, 'keyframes': 100, 'points': 1000,
                            'finetune_steps': 50},
            'rows': rows, 'row_order': list(finals), 'wall_seconds': 30.0}


def test_the_report_aggregates_known_results(tmp_path):
    memory, no_memory, explore = ROW_NAMES['all'], ROW_NAMES['no_memory'], ROW_NAMES['explore']
    results = [fake_result(1, 0, {memory: 0.5, no_memory: 3.0, explore: 6.0}),
               fake_result(1, 1, {memory: 0.8, no_memory: 0.9, explore: 5.0}),
               fake_result(2, 0, {memory: 4.0, no_memory: 5.0, explore: 0.7})]
    summary = nav_report.aggregate(results)
    rows = summary['rows']
    assert rows[memory]['success_rate'] == pytest.approx(2 / 3)
    assert rows[no_memory]['success_rate'] == pytest.approx(1 / 3)
    assert rows[explore]['successes'] == 1
    assert rows[memory]['success_rate_sem'] == pytest.approx(math.sqrt(2 / 9 / 3))
    assert rows[memory]['final_distance'] == pytest.approx((0.5 + 0.8 + 4.0) / 3)
    assert rows[memory]['final_distance_median'] == pytest.approx(0.8)
    assert rows[memory]['planning_ms'] == pytest.approx(200.0)
    assert rows[memory]['localised_within_radius'] == pytest.approx(2 / 3)
    assert math.isnan(rows[explore]['planning_ms'])
    assert summary['mazes'] == 2 and summary['episodes'] == 3
    comparison = summary['comparison']
    assert comparison['met'] and comparison['margin'] == pytest.approx(1 / 3)
    table = nav_report.markdown_table(summary)
    assert '2/3 (67%' in table and '- met:' in table and '+33 points' in table
    assert table.count('\n| ') == 3                          # three rows
    worse = nav_report.aggregate([fake_result(1, 0, {memory: 3.0, no_memory: 0.5})])
    assert not worse['comparison']['met'] and 'does not beat' in worse['comparison']['text']
    nav_report.plot(summary, results, tmp_path / 'plot.png')
    assert (tmp_path / 'plot.png').stat().st_size > 1000
    with pytest.raises(ValueError):
        nav_report.aggregate([])


def test_maze_distances_follow_the_corridors():
    layout = np.zeros((3, 3), np.uint8)
    layout[0, :] = 1                 # bottom row free
    layout[:, 2] = 1                 # right column free: an L
    maze = MazeGrid(layout)          # 6 m x 6 m, origin at the centre
    distance = maze_distances(maze, maze.cell_centre_world((0, 0)))
    near, far, wall = (maze.cell_centre_world(c) for c in ((1, 0), (2, 2), (0, 2)))
    d = distance(np.stack([near, far, wall]))
    assert d[0] == pytest.approx(2.0, abs=0.15)
    assert d[1] == pytest.approx(6.9, abs=0.3)              # round the corner, not 5.7 m
    assert np.isinf(d[2])


def test_goals_are_far_informative_and_apart():
    layout = np.ones((9, 9), np.uint8)
    maze = MazeGrid(layout)
    mount = navigation.base_from_camera()
    config = NavEvalConfig(goals_per_maze=3, min_goal_distance=6.0, goal_min_depth=1.0)
    frames = []
    for x, depth in ((0.5, 3.0), (7.0, 3.0), (7.2, 3.0), (-7.0, 3.0), (0.0, 7.0), (7.5, 0.3)):
        base = np.eye(4)
        base[:2, 3] = (x, 0.0) if x != 0.0 else (0.0, 7.0)
        frames.append({'pose': base @ mount, 'median_depth': depth})
    chosen, distance = choose_goals(frames, np.zeros(2), maze, config,
                                    np.random.default_rng(0))
    assert sorted(chosen) in ([1, 3, 4], [2, 3, 4])          # not the near one nor the close-up
    assert distance[1] == pytest.approx(7.0, abs=0.2)
    few = NavEvalConfig(goals_per_maze=2, min_goal_distance=50.0, goal_min_depth=1.0)
    chosen, _ = choose_goals(frames, np.zeros(2), maze, few, np.random.default_rng(0))
    assert len(chosen) == 2 and chosen[0] == 2              # the farthest first


def test_settings_are_checked_and_the_command_is_registered():
    for changes, name in (({'rows': ('all', 'nope')}, 'rows'), ({'mazes': 0}, 'mazes'),
                          ({'goal_radius': 0.0}, 'goal_radius'), ({'shard': (2, 2)}, 'shard'),
                          ({'lookahead': math.inf}, 'lookahead')):
        with pytest.raises(ValueError, match=name):
            NavEvalConfig(**changes)
    args = cli.build_parser().parse_args(['eval', 'navigation', '--out', 'x', '--mazes', '3',
                                          '--shard', '1/2', '--quick'])
    assert args.func.__name__ == 'run_navigation' and args.quick and args.threads == 1
    assert cli.main(['eval', 'navigation', '--out', 'x', '--shard', '3/2']) == 2
