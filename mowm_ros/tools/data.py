"""``mowm data``: generate Memory Maze episodes, import rosbag2 recordings, summarise a dataset."""

import json
import logging
from pathlib import Path
import sys


TOPIC_ROLES = ('image_topic', 'depth_topic', 'info_topic', 'odom_topic')


def _show_warnings():
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s: %(message)s')


def run_generate(args):
    _show_warnings()
    # lazy: keeps `mowm` quick to start
    from mowm_ros.data.generate import DirectoryBusy, generate_dataset, ParameterMismatch
    from mowm_ros.data.maze_env import GenerationConfig, max_env_steps

    config = GenerationConfig(
        maze_size=args.maze_size, steps=args.steps or max_env_steps(args.maze_size),
        frame_skip=args.frame_skip, size=args.size, camera_size=args.camera_size)
    seeds = range(args.seed_start, args.seed_start + args.episodes)
    try:
        report = generate_dataset(args.out, seeds, config, workers=args.workers,
                                  force=args.force, verify=args.verify,
                                  progress=not args.no_progress)
    except (DirectoryBusy, ParameterMismatch, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    revisits = [stats['revisit_fraction'] for stats in report.generated]
    summary = {
        'generated': len(report.generated), 'skipped': len(report.skipped),
        'regenerated_corrupt': [name for name, _ in report.replaced],
        'failed': [f'seed {seed}: {error}' for seed, error in report.failed],
        'env_steps': report.env_steps,
        'env_steps_per_second_per_core': round(report.steps_per_second_per_core(), 1),
        'wall_seconds': round(report.seconds, 1),
        'revisit_fraction_mean': round(sum(revisits) / len(revisits), 3) if revisits else None,
    }
    print(json.dumps(summary, indent=2))
    return 1 if report.failed else 0


def run_from_bag(args):
    _show_warnings()
    # lazy: keeps `mowm` quick to start
    from mowm_ros.data.bag_import import BagImportConfig, BagImportError, import_bag
    from mowm_ros.data.episode import save_episode

    try:
        options = import_options(args, depth='optional')
        episode = import_bag(args.bag, BagImportConfig(
            **options, size=args.size, keep_original=args.keep_original, stride=args.stride,
            min_period=args.min_period))
    except BagImportError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.suffix != '.npz':
        out = out.with_suffix('.npz')
    save_episode(out, episode)
    meta = episode.meta
    print(json.dumps({'out': str(out), 'frames': len(episode), 'bags': len(meta['sources']),
                      'topics': {role: meta[role] for role in TOPIC_ROLES},
                      **meta['counts'], 'extrinsics': meta['extrinsics'],
                      'extrinsics_from': meta['extrinsics_from'],
                      'odometry_gaps': meta['odometry_gaps'],
                      'camera_info_changes': meta['camera_info_changes'],
                      'revisit_fraction': meta.get('revisit_fraction')}, indent=2))
    return 0


def import_options(args, depth):
    """
    Return BagImportConfig options from the arguments of ``add_import_arguments``.

    Topics not named are found in the bags (``depth``: 'required' or 'optional'; --no-depth:
    none).
    """
    # lazy: keeps `mowm` quick to start
    from mowm_ros.data.bag_topics import resolve_topics

    given = {role: getattr(args, role) for role in TOPIC_ROLES}
    options = resolve_topics(args.bag, given, 'none' if args.no_depth else depth)
    options.update(depth_tolerance=args.depth_tolerance, max_odom_gap=args.max_odom_gap,
                   extrinsics_from=args.extrinsics_from, tf_topic=args.tf_topic,
                   base_frame=args.base_frame, camera_frame=args.camera_frame)
    if args.extrinsics is not None:
        options['extrinsics'] = tuple(args.extrinsics)
    return options


def add_import_arguments(parser):
    """Arguments of a rosbag2 import: bags, topics (found when not named), extrinsics."""
    parser.add_argument('bag', nargs='+',
                        help='rosbag2 directories, .mcap/.db3 files or directories of bags, '
                             'read as one recording in time order')
    found = 'default: the first of the common driver names the bag has, e.g. '
    parser.add_argument('--image-topic', default='',
                        help='sensor_msgs/Image or CompressedImage (JPEG/PNG); '
                             f'{found}/camera/color/image_raw(/compressed)')
    parser.add_argument('--depth-topic', default='',
                        help='sensor_msgs/Image (32FC1, 16UC1) or CompressedImage '
                             f'(compressedDepth) registered to the colour camera; {found}'
                             '/camera/aligned_depth_to_color/image_raw, '
                             '/camera/depth/image_rect_raw')
    parser.add_argument('--no-depth', action='store_true',
                        help='import no depth (an RGB-only camera)')
    parser.add_argument('--info-topic', default='',
                        help="the colour camera's CameraInfo; default: <image ns>/camera_info")
    parser.add_argument('--odom-topic', default='',
                        help='nav_msgs/Odometry, or geometry_msgs PoseStamped / '
                             f'PoseWithCovarianceStamped; {found}/odom, /odometry/filtered')
    parser.add_argument('--extrinsics', type=float, nargs=7, default=None,
                        metavar=('X', 'Y', 'Z', 'QX', 'QY', 'QZ', 'QW'),
                        help='base <- camera optical frame, used when /tf_static does not link '
                             'the frames (default: the Memory Maze camera mount)')
    parser.add_argument('--extrinsics-from', choices=('auto', 'tf', 'argument'),
                        default='auto',
                        help='auto: /tf_static when it links base and camera frames, else '
                             '--extrinsics; tf: require /tf_static; argument: ignore /tf_static')
    parser.add_argument('--tf-topic', default='/tf_static')
    parser.add_argument('--base-frame', default='',
                        help="robot base frame (default: the odometry's child_frame_id)")
    parser.add_argument('--camera-frame', default='',
                        help="camera optical frame (default: the images' frame_id)")
    parser.add_argument('--depth-tolerance', type=float, default=0.02,
                        help='seconds between an image and its depth (default 0.02)')
    parser.add_argument('--max-odom-gap', type=float, default=0.5,
                        help='seconds between odometry samples to interpolate across')


def episode_summary(path):
    """Return a dict describing one episode file (loaded in full, so damage shows)."""
    # lazy: keeps `mowm` quick to start
    from mowm_ros.data.episode import load_episode

    episode = load_episode(path)
    revisit = episode.extras.get('revisit')
    return {
        'name': Path(path).name, 'frames': len(episode),
        'size': f'{episode.image_size[0]}x{episode.image_size[1]}',
        'maze_size': episode.meta.get('maze_size'), 'seed': episode.meta.get('seed'),
        'depth': episode.depth is not None,
        'revisit_fraction': float(revisit.mean()) if revisit is not None else None,
        'revisits': int(revisit.sum()) if revisit is not None else None,
    }


def run_stats(args):
    _show_warnings()
    # lazy: keeps `mowm` quick to start
    from mowm_ros.data.episode import episode_paths, EpisodeError

    rows, errors = [], []
    for path in episode_paths(args.directory):
        try:
            rows.append(episode_summary(path))
        except EpisodeError as exc:
            errors.append(str(exc))
    frames = sum(row['frames'] for row in rows)
    labelled = [row for row in rows if row['revisits'] is not None]
    labelled_frames = sum(row['frames'] for row in labelled)
    total = {'episodes': len(rows), 'frames': frames, 'unreadable': errors,
             'revisit_fraction': (sum(row['revisits'] for row in labelled) / labelled_frames
                                  if labelled_frames else None)}
    if args.json:
        print(json.dumps({'episodes': rows, 'total': total}, indent=2))
        return 0
    for row in rows:
        revisit = '-' if row['revisit_fraction'] is None else f'{row["revisit_fraction"]:.3f}'
        print(f'{row["name"]:32s} {row["frames"]:6d} frames  {row["size"]:>9s}  '
              f'revisit {revisit}')
    for error in errors:
        print(f'unreadable: {error}')
    revisit = total['revisit_fraction']
    print(f'{len(rows)} episodes, {frames} frames, revisit fraction '
          f'{"-" if revisit is None else f"{revisit:.3f}"}')
    return 0


def run_record_sim(args):
    _show_warnings()
    # lazy: keeps `mowm` quick to start
    from mowm_ros.data.sim_recorder import record_sim, SimRecordingConfig

    try:
        config = SimRecordingConfig(
            maze_size=args.maze_size, seed=args.seed, steps=args.steps, width=args.width,
            height=args.height, fovy=args.fovy, storage=args.storage)
        summary = record_sim(args.out, config, progress=not args.no_progress)
    except ValueError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


def add_record_sim_parser(commands):
    record = commands.add_parser(
        'record-sim', help="record the simulated robot's topics (sim_robot's names) into a "
        'rosbag2 recording, any camera size and field of view')
    record.add_argument('--out', required=True, help='recording to write (a new directory)')
    record.add_argument('--maze-size', type=int, default=9, choices=(9, 11, 13, 15))
    record.add_argument('--seed', type=int, default=0, help='maze and route')
    record.add_argument('--steps', type=int, default=1000,
                        help='control periods of 0.25 s (default 1000: 250 s)')
    record.add_argument('--width', type=int, default=64, help='camera width, pixels')
    record.add_argument('--height', type=int, default=64, help='camera height, pixels')
    record.add_argument('--fovy', type=float, default=0.0,
                        help="vertical field of view, degrees (default: Memory Maze's 80)")
    record.add_argument('--storage', default='mcap', choices=('mcap', 'sqlite3'))
    record.add_argument('--no-progress', action='store_true')
    record.set_defaults(func=run_record_sim)


def add_parser(subparsers):
    parser = subparsers.add_parser('data', help='generate, import and inspect episodes')
    commands = parser.add_subparsers(dest='data_command', required=True)

    generate = commands.add_parser(
        'generate', help='Memory Maze RGB-D episodes under the exploration policy')
    generate.add_argument('--out', required=True, help='output directory')
    generate.add_argument('--episodes', type=int, default=10)
    generate.add_argument('--seed-start', type=int, default=0)
    generate.add_argument('--maze-size', type=int, default=9, choices=(9, 11, 13, 15))
    generate.add_argument('--steps', type=int, default=0,
                          help="env steps per episode (default: the maze's full episode, "
                               '1000 for 9x9)')
    generate.add_argument('--frame-skip', type=int, default=1,
                          help='store every n-th env step (default 1)')
    generate.add_argument('--size', type=int, default=64, help='model resolution')
    generate.add_argument('--camera-size', type=int, default=0,
                          help='also store rgb_camera/depth_camera at this resolution')
    generate.add_argument('--workers', type=int, default=2, help='parallel processes')
    generate.add_argument('--force', action='store_true',
                          help='regenerate episodes that already exist')
    generate.add_argument('--verify', action='store_true',
                          help='fully load existing episodes before skipping them')
    generate.add_argument('--no-progress', action='store_true')
    generate.set_defaults(func=run_generate)

    bag = commands.add_parser(
        'from-bag', help='convert rosbag2 (MCAP or sqlite3) recordings into one episode')
    add_import_arguments(bag)
    bag.add_argument('--out', required=True, help='episode file (.npz)')
    bag.add_argument('--size', type=int, default=64,
                     help='square model resolution, centre-cropped (0: keep the recorded)')
    bag.add_argument('--keep-original', action='store_true',
                     help='also store the recorded resolution as rgb_camera/depth_camera')
    bag.add_argument('--stride', type=int, default=1, help='keep every n-th image')
    bag.add_argument('--min-period', type=float, default=0.0,
                     help='seconds: skip images sooner than this after the last one kept')
    bag.set_defaults(func=run_from_bag)

    add_record_sim_parser(commands)

    stats = commands.add_parser('stats', help='frames and revisit fraction of a directory')
    stats.add_argument('directory')
    stats.add_argument('--json', action='store_true')
    stats.set_defaults(func=run_stats)
