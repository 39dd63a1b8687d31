"""The one extrinsics parser and its default, the Memory Maze camera mount."""

from mowm_ros import geometry
from mowm_ros.extrinsics import DEFAULT_EXTRINSICS, extrinsics_matrix
import numpy as np
import pytest


def test_the_default_mount_looks_forward_and_slightly_down_from_0_9_m():
    pose = extrinsics_matrix(DEFAULT_EXTRINSICS)
    assert np.allclose(pose[:3, 3], [0.15, 0.0, 0.9])
    optical_z_in_base = pose[:3, 2]
    assert optical_z_in_base[0] > 0.99 and optical_z_in_base[2] == pytest.approx(-0.0995, abs=1e-4)
    geometry.check_pose(pose, 'mount')


@pytest.mark.parametrize('values, message', [
    ([0.0] * 6, r'camera_extrinsics must be 7 finite values \[x y z qx qy qz qw\], got \[0.0'),
    ([0, 0, 0, float('inf'), 0, 0, 1], 'camera_extrinsics must be 7 finite values'),
    ('x', 'camera_extrinsics must be 7 finite values'),
    ([0.0] * 7, r'camera_extrinsics: quaternion \(0.0, 0.0, 0.0, 0.0\) cannot be normalised'),
])
def test_bad_extrinsics_are_named_and_refused(values, message):
    with pytest.raises(ValueError, match=message):
        extrinsics_matrix(values, 'camera_extrinsics')
