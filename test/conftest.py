"""Shared fixtures: a real ROS 2 context per test, each on its own DDS domain."""

import os
import sys

from hypothesis import settings
import pytest

# Before rclpy is imported anywhere: discovery stays on this machine.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('MUJOCO_GL', 'osmesa')

sys.path.insert(0, os.path.dirname(__file__))

from ros_harness import claim_domain_id, RosHarness  # noqa: E402

# Hypothesis draws the same examples on every run (seeded per test): a property test either
# always passes or always fails, never by the luck of one run's draw.
settings.register_profile('mowm_ros', derandomize=True, database=None)
settings.load_profile('mowm_ros')


@pytest.fixture
def domain_id():
    """Claim a DDS domain id no other test (in this run or a concurrent one) is using."""
    with claim_domain_id() as claimed:
        yield claimed


@pytest.fixture
def ros(domain_id):
    """Start a RosHarness: own Context on ``domain_id``, executor spinning in a thread."""
    harness = RosHarness(domain_id)
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def one_thread():
    """Run torch on one thread: two threads on a busy 2-core machine stall on each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
