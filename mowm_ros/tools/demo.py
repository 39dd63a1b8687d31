"""
``mowm demo``: the simulated robot and the world model together, scored (``make demo``).

    mowm demo [--out out/demo] [--steps 480] [--seed 90003]    # fixed route, then a summary
    mowm demo --live                                           # until Ctrl-C, for rviz
    mowm demo --live --view [--port 9090]     # and the Rerun web viewer at the printed URL
    mowm demo --rgb-only     # the node ignores depth: short-term + episodic experts only
    mowm demo --real-time    # the robot does not wait for the world model
    mowm demo --drift        # the robot's odometry drifts like wheel odometry
    mowm demo --drift --trust-travel-m 0     # ... and the world model trusts all its memory
"""

import os
from pathlib import Path
import sys


def run(args):
    os.environ.setdefault('MUJOCO_GL', 'osmesa')
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    # lazy: keeps `mowm` quick to start
    import torch
    from mowm_ros.nodes.demo import DemoConfig, format_summary, run_demo
    if args.threads:
        torch.set_num_threads(args.threads)
    config = DemoConfig(out_dir=args.out, seed=args.seed, steps=args.steps,
                        rate_hz=args.rate, live=args.live, rgb_only=args.rgb_only,
                        drift=args.drift, trust_travel_m=args.trust_travel_m,
                        lockstep=not args.real_time,
                        view_port=args.port if args.view else 0)
    try:
        summary = run_demo(config)
    except (ValueError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(format_summary(summary))
    cloud = ', memory_cloud.ply' if summary['memory_points'] else ''
    print(f'wrote {args.out}/metrics.json, revisits.png (camera above, prediction below)'
          + cloud + (', demo.rrd (Rerun: `rerun demo.rrd`)'
                     if (Path(args.out) / 'demo.rrd').exists() else ''))
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser('demo', help='simulated robot + world model, scored')
    parser.add_argument('--out', default='out/demo', help='output directory')
    parser.add_argument('--steps', type=int, default=480, help='robot steps of the route')
    parser.add_argument('--seed', type=int, default=90_003, help='maze seed (held out)')
    parser.add_argument('--rate', type=float, default=4.0, help='robot control rate, Hz')
    parser.add_argument('--live', action='store_true', help='run until Ctrl-C (for rviz)')
    parser.add_argument('--view', action='store_true',
                        help='serve the Rerun web viewer on --port while the demo runs')
    parser.add_argument('--port', type=int, default=9090, help='HTTP port of the viewer')
    parser.add_argument('--rgb-only', action='store_true',
                        help='an RGB-only camera: no depth, so no spatial memory; the node '
                        'runs the short-term and episodic experts')
    parser.add_argument('--drift', action='store_true',
                        help="the robot's odometry drifts as uncalibrated wheel odometry does "
                        '(rates drawn from the maze seed around the nominal 0.03 rad per metre '
                        'and 2%% scale, for the default seed 0.021 rad/m and 1.4%%; '
                        'mowm_ros/data/drift.py); the camera '
                        'stays the truth')
    parser.add_argument('--trust-travel-m', type=float, default=None, metavar='M',
                        help='the world model renders and retrieves only memory seen within the '
                        'last M metres travelled (default: 4 with --drift, else 0: all of it)')
    parser.add_argument('--real-time', action='store_true',
                        help='the robot steps at --rate of wall time whether or not the world '
                        'model keeps up (the default waits for it: simulated time, scores '
                        'that do not depend on the machine; --live is always real time)')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.set_defaults(func=run)
