"""
``mowm eval memory-maze`` and ``mowm eval navigation``: the memory and navigation benchmarks.

``memory-maze`` is the paper-style memory benchmark on held-out Memory Maze episodes. It writes
``results.md`` (the table), ``results.json`` and PNG plots into ``--out``, one JSON result per
episode under ``--out/per_episode`` (a rerun skips finished episodes) and the generated
episodes under ``--cache`` (default ``--out/episodes``), made once and reused.

``navigation`` drives a Memory Maze robot to goal images of places it explored, with the world
model's navigator (all experts, no memory) and a non-learned explorer; it writes
``results.md``, ``results.json`` and ``navigation.png``, one JSON per (maze, goal) under
``--out/per_episode``.
"""

import argparse
import logging
import sys

from mowm_ros.device import device_argument, DEVICE_HELP


def _config(args):
    # lazy: keeps `mowm` quick to start
    from mowm_ros.evaluation.rows import ROW_KEYS, ROWS_BY_NAME, rows_from_keys
    from mowm_ros.evaluation.runner import EvalConfig

    index, count = (int(v) for v in args.shard.split('/'))
    rows = args.rows or [key for key, name in ROW_KEYS.items()   # rgb-only: no spatial rows
                         if args.condition != 'rgb-only'
                         or 'spatial' not in ROWS_BY_NAME[name].experts]
    return EvalConfig(
        out_dir=args.out, cache_dir=args.cache or '', checkpoint=args.checkpoint,
        device=args.device, episodes=args.episodes, seed_start=args.seed_start,
        context=args.context, horizon=args.horizon, frame_skip=args.frame_skip,
        maze_size=args.maze_size, episode_steps=args.episode_steps,
        sampler_steps=args.steps, seed=args.seed, finetune_sync=args.finetune_sync,
        strip_frames=args.strip_frames, bf16=not args.no_bf16,
        rows=rows_from_keys(rows), shard=(index, count), condition=args.condition,
        trust_travel_m=args.trust_travel_m,
        **({} if args.episodic_retrieval is None
           else {'episodic_retrieval': args.episodic_retrieval}))


def _evaluate(args, make_config, run, finished_results, report, count):
    """Run (unless --report-only) and report one benchmark; return the exit status."""
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s: %(message)s')
    # lazy: keeps `mowm` quick to start
    import torch

    try:
        config = make_config(args)
    except ValueError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    if not args.report_only:
        run(config, progress=not args.no_progress)
    results = finished_results(config)
    if not results:
        print('no finished episodes to report', file=sys.stderr)
        return 1
    summary = report.write_report(config, results)
    print(report.markdown_table(summary))
    where = getattr(config, 'report_dir', config.out_dir)
    print(f'\n{len(results)} of {count(config)} episodes; report in {where}')
    return 0


def run_memory_maze(args):
    # lazy: keeps `mowm` quick to start
    from mowm_ros.evaluation import report
    from mowm_ros.evaluation.runner import finished_results, run_evaluation

    return _evaluate(args, _config, run_evaluation, finished_results, report,
                     lambda config: config.episodes)


def _navigation_config(args):
    # lazy: keeps `mowm` quick to start
    from mowm_ros.evaluation.navigation import NavEvalConfig

    index, count = (int(v) for v in args.shard.split('/'))
    settings = {'out_dir': args.out, 'checkpoint': args.checkpoint, 'device': args.device,
                'mazes': args.mazes, 'goals_per_maze': args.goals_per_maze,
                'seed_start': args.seed_start, 'explore_steps': args.explore_steps,
                'step_budget': args.step_budget, 'goal_radius': args.goal_radius,
                'sampler_steps': args.steps, 'shard': (index, count)}
    if args.quick:
        settings.update(quick_settings())
    return NavEvalConfig(**settings)


def quick_settings():
    """Return the settings of a smoke run: one small maze, a short drive, few candidates."""
    # lazy: keeps `mowm` quick to start
    from mowm_ros.planning.navigator import NavigatorConfig

    return {'mazes': 1, 'goals_per_maze': 1, 'explore_steps': 40, 'step_budget': 6,
            'min_goal_distance': 2.0, 'goal_min_depth': 0.0, 'sampler_steps': 1,
            'finetune_steps_per_keyframe': 0,
            'navigator': NavigatorConfig(candidate_spacing=2.0, candidate_yaws=4,
                                         max_candidates=16, refine_top=1, refine_samples=2,
                                         approach_distance=0.0, batch_size=16)}


def run_navigation(args):
    # lazy: keeps `mowm` quick to start
    from mowm_ros.evaluation import nav_report
    from mowm_ros.evaluation.navigation import finished_results, run_navigation as run

    return _evaluate(args, _navigation_config, run, finished_results, nav_report,
                     lambda config: config.mazes * config.goals_per_maze)


def add_navigation_parser(benchmarks):
    nav = benchmarks.add_parser(
        'navigation', help='explore held-out Memory Mazes, then drive to goal images of '
        'places seen: world model (all experts, no memory) against a non-learned explorer')
    nav.add_argument('--out', default='runs/nav_eval', help='output directory')
    nav.add_argument('--checkpoint', default='',
                     help="checkpoint directory ('' = the shipped one)")
    nav.add_argument('--device', default='auto', type=device_argument,
                     help=f'{DEVICE_HELP} (default: auto)')
    nav.add_argument('--mazes', type=int, default=6)
    nav.add_argument('--goals-per-maze', type=int, default=2)
    nav.add_argument('--seed-start', type=int, default=200_000,
                     help='first maze seed (training used 0-23, the memory benchmark 100000+)')
    nav.add_argument('--explore-steps', type=int, default=300,
                     help='env steps of exploration before the goals (0.25 s each)')
    nav.add_argument('--step-budget', type=int, default=120, help='env steps to reach a goal')
    nav.add_argument('--goal-radius', type=float, default=1.0, help='success radius, m')
    nav.add_argument('--steps', type=int, default=2, help='sampler (DDIM) steps per view')
    nav.add_argument('--quick', action='store_true',
                     help='a smoke run: one maze, one goal, tiny budgets')
    nav.add_argument('--shard', default='0/1',
                     help='I/N: run every N-th maze from the I-th (processes sharing --out)')
    nav.add_argument('--threads', type=int, default=1, help='torch threads')
    nav.add_argument('--report-only', action='store_true',
                     help='only write the report from the episodes finished so far')
    nav.add_argument('--no-progress', action='store_true')
    nav.set_defaults(func=run_navigation)


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'eval', help='evaluate the world model (memory and navigation benchmarks)')
    benchmarks = parser.add_subparsers(dest='evaluation', required=True)
    maze = benchmarks.add_parser(
        'memory-maze', help='observe C frames of held-out Memory Maze episodes, predict H '
        'along the true poses; PSNR/SSIM on revisit and novel frames per expert set')
    maze.add_argument('--out', default='runs/eval', help='output directory')
    maze.add_argument('--cache', help='generated episodes (default: OUT/episodes)')
    maze.add_argument('--checkpoint', default='',
                      help="checkpoint directory ('' = the shipped one)")
    maze.add_argument('--device', default='auto', type=device_argument,
                      help=f'{DEVICE_HELP} (default: auto)')
    maze.add_argument('--episodes', type=int, default=32)
    maze.add_argument('--seed-start', type=int, default=100_000,
                      help='first held-out seed (training used seeds 0-23)')
    maze.add_argument('--context', type=int, default=450, help='observed model frames C')
    maze.add_argument('--horizon', type=int, default=42, help='predicted model frames H')
    maze.add_argument('--frame-skip', type=int, default=2,
                      help='env steps between model frames (as in training)')
    maze.add_argument('--maze-size', type=int, default=9, choices=(9, 11, 13, 15))
    maze.add_argument('--episode-steps', type=int, default=1000,
                      help='env steps generated per episode')
    maze.add_argument('--steps', type=int, default=4, help='sampler (DDIM) steps')
    maze.add_argument('--seed', type=int, default=0, help='sampler noise seed')
    maze.add_argument('--finetune-sync', default='keyframe', choices=('keyframe', 'end'),
                      help='wait for finetuning after every keyframe, or once at the end')
    maze.add_argument('--condition', default='rgbd', choices=('rgbd', 'rgb-only', 'drift'),
                      help='rgbd: colour, depth and true poses; rgb-only: no depth (no '
                      'spatial memory, rows without spatial); drift: observed and queried '
                      'poses carry seeded wheel-odometry drift (results in OUT/CONDITION)')
    maze.add_argument('--episodic-retrieval', action=argparse.BooleanOptionalAction,
                      help='the episodic expert reads the keyframes taken nearest each target '
                      'pose in place of the recent frames (memory/retrieval.py; default: the '
                      "world model's)")
    maze.add_argument('--trust-travel-m', type=float, default=0.0, metavar='M',
                      help='render the spatial memory and retrieve keyframes only from what was '
                      'seen within the last M metres travelled (for drifting odometry; '
                      'default 0: all of it)')
    maze.add_argument('--rows', nargs='+',
                      choices=('stm', 'episodic', 'spatial', 'all', 'naive', 'window'),
                      help='rows to evaluate (default: all six; rgb-only: stm episodic window)')
    maze.add_argument('--strip-frames', type=int, default=6,
                      help='revisit frames per episode kept for the strip plot')
    maze.add_argument('--shard', default='0/1',
                      help='I/N: evaluate every N-th seed from the I-th (parallel processes '
                      'sharing --out)')
    maze.add_argument('--threads', type=int, default=2, help='torch threads')
    maze.add_argument('--no-bf16', action='store_true', help='fp32 instead of bf16 autocast')
    maze.add_argument('--report-only', action='store_true',
                      help='only write the report from the episodes finished so far')
    maze.add_argument('--no-progress', action='store_true')
    maze.set_defaults(func=run_memory_maze)
    add_navigation_parser(benchmarks)
