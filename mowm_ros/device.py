"""
The device string, checked in one place: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

Configs, node parameters and command-line options call ``check_device`` to refuse a bad name
early (this module does not import torch, so the ``mowm`` command stays quick to start);
``world_model.resolve_device`` turns a checked name into a ``torch.device``.
"""

import argparse
import re

DEVICE_NAME = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')
DEVICE_HELP = "'auto', 'cpu', 'cuda' or 'cuda:N'"


def check_device(name: str) -> str:
    """Return ``name`` when it names a device, else raise ValueError saying what is accepted."""
    if not isinstance(name, str) or not DEVICE_NAME.match(name):
        raise ValueError(f'device must be {DEVICE_HELP}, got {name!r}')
    return name


def device_argument(value: str) -> str:
    """Check a ``--device`` option; argparse reports the problem as check_device words it."""
    try:
        return check_device(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
