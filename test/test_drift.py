"""The wheel-odometry drift model: identity without drift, growth with distance, seeded."""

import math

from hypothesis import given, settings, strategies as st
from mowm_ros import geometry
from mowm_ros.data.drift import drift_trajectory, DriftConfig, OdometryDrift
import numpy as np
import pytest


def wander(seed, steps=60, step_length=0.1):
    """Return a random planar drive: camera poses (N, 4, 4) about step_length apart."""
    rng = np.random.default_rng(seed)
    x = y = 0.0
    yaw = rng.uniform(-math.pi, math.pi)
    poses = []
    for _ in range(steps):
        poses.append(geometry.camera_pose_from_planar(x, y, yaw, 0.3))
        yaw += rng.normal(0.0, 0.3)
        x += step_length * math.cos(yaw)
        y += step_length * math.sin(yaw)
    return np.stack(poses)


def straight(steps, step_length=0.1, yaw=0.0):
    return np.stack([geometry.camera_pose_from_planar(i * step_length * math.cos(yaw),
                                                      i * step_length * math.sin(yaw), yaw, 0.3)
                     for i in range(steps)])


def position_error(drifted, true):
    return np.linalg.norm(drifted[:, :2, 3] - true[:, :2, 3], axis=1)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), drive=st.integers(0, 10_000))
def test_zero_drift_is_the_identity(seed, drive):
    poses = wander(drive)
    drifted = drift_trajectory(poses, DriftConfig(yaw_per_metre=0.0, scale=0.0, seed=seed))
    np.testing.assert_allclose(drifted, poses, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), drive=st.integers(0, 10_000))
def test_drift_starts_at_the_first_pose_and_grows_with_distance(seed, drive):
    poses = wander(drive, steps=80)
    drifted = drift_trajectory(poses, DriftConfig(seed=seed))
    np.testing.assert_allclose(drifted[0], poses[0], atol=1e-12)
    # The heading error is kappa times the distance travelled, so it grows monotonically.
    yaw_error = np.abs(geometry.wrap_angle(geometry.camera_forward_yaw(drifted)
                                           - geometry.camera_forward_yaw(poses)))
    assert np.all(np.diff(yaw_error) > 0), 'the heading error did not grow at every step'
    distance = np.concatenate([[0.0], np.cumsum(np.linalg.norm(
        np.diff(poses[:, :2, 3], axis=0), axis=1))])
    kappa, _ = DriftConfig(seed=seed).rates()
    np.testing.assert_allclose(yaw_error, abs(kappa) * distance, atol=1e-9)
    # Along a straight drive (a winding one can turn its error back), the position error
    # grows at every step.
    line = straight(81, yaw=drive / 1000.0)
    errors = position_error(drift_trajectory(line, DriftConfig(seed=seed)), line)
    assert errors[0] == 0.0 and np.all(np.diff(errors) > 0), errors


def test_straight_drive_bends_into_an_arc_and_scales_its_length():
    poses = straight(101, step_length=0.1)   # 10 m along x
    drift = OdometryDrift(yaw_rate=0.03, scale_error=0.02)
    drifted = np.stack([drift(pose) for pose in poses])
    assert drift.distance == pytest.approx(10.0)
    assert drift.yaw_error == pytest.approx(0.3)
    yaw = geometry.camera_forward_yaw(drifted[-1])
    assert yaw == pytest.approx(0.3)                     # turned left by kappa * 10 m
    # The drifted path is an arc of length 10.2 m: its chord, with its midpoint angles.
    arc_length, angle = 10.2, 0.3
    chord = arc_length * math.sin(angle / 2) / (angle / 2)
    end = drifted[-1, :2, 3]
    assert np.linalg.norm(end) == pytest.approx(chord, rel=1e-3)
    assert math.atan2(end[1], end[0]) == pytest.approx(angle / 2, rel=1e-3)
    np.testing.assert_allclose(drifted[:, 2, 3], 0.3)   # height is untouched


def test_same_seed_same_drift_other_seeds_differ():
    poses = wander(3)
    first = drift_trajectory(poses, DriftConfig(seed=5))
    np.testing.assert_array_equal(first, drift_trajectory(poses, DriftConfig(seed=5)))
    others = [drift_trajectory(poses, DriftConfig(seed=seed)) for seed in range(6, 12)]
    assert all(np.abs(other - first).max() > 1e-3 for other in others)
    rates = [DriftConfig(seed=seed).rates() for seed in range(200)]
    kappas, scales = np.array(rates).T
    # Random signs, magnitudes in [0.5, 1.5] x nominal.
    assert (kappas > 0).any() and (kappas < 0).any() and (scales > 0).any() and (scales < 0).any()
    assert np.all((np.abs(kappas) >= 0.015) & (np.abs(kappas) <= 0.045))
    assert np.all((np.abs(scales) >= 0.01) & (np.abs(scales) <= 0.03))


def test_reset_starts_a_new_drive_and_bad_input_is_named():
    poses = straight(20)
    drift = OdometryDrift(yaw_rate=0.05, scale_error=-0.02)
    first = [drift(pose) for pose in poses]
    drift.reset()
    assert drift.distance == 0.0
    np.testing.assert_allclose([drift(pose) for pose in poses], first)
    with pytest.raises(ValueError, match='yaw_per_metre'):
        DriftConfig(yaw_per_metre=-0.1)
    with pytest.raises(ValueError, match='spread'):
        DriftConfig(spread=2.0)
    with pytest.raises(ValueError, match='scale_error'):
        OdometryDrift(scale_error=-1.5)
    with pytest.raises(ValueError, match='NaN'):
        drift(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match=r'\(N, 4, 4\)'):
        drift_trajectory(np.eye(4), DriftConfig())
