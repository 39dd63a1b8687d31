"""``mowm info``: what this installation can use (versions, accelerator, renderers, ROS)."""

import importlib
import json
import os


def collect():
    report = {}
    for name in ('numpy', 'torch', 'open3d', 'safetensors', 'rosbags', 'mujoco', 'dm_control',
                 'memory_maze', 'rclpy'):
        try:
            module = importlib.import_module(name)
            report[name] = getattr(module, '__version__', 'installed')
        except Exception as exc:  # noqa: B902 - any import failure is reported, not raised
            report[name] = f'unavailable ({type(exc).__name__}: {exc})'
    try:
        # lazy: keeps `mowm` quick to start
        import torch
        report['cuda'] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'
        report['torch_threads'] = torch.get_num_threads()
    except ImportError:
        pass
    report['MUJOCO_GL'] = os.environ.get('MUJOCO_GL', '')
    report['ROS_DOMAIN_ID'] = os.environ.get('ROS_DOMAIN_ID', '')
    return report


def run(args):
    print(json.dumps(collect(), indent=2))
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser('info', help='show versions, accelerator and ROS availability')
    parser.set_defaults(func=run)
