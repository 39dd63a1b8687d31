"""
Wheel-odometry drift: the poses a robot believes it has, when its odometry drifts.

Wheel odometry errs systematically (Borenstein and Feng's UMBmark): unequal wheel diameters
turn a straight drive into an arc, so the heading error grows with the distance travelled, and
a wrong mean wheel diameter scales every distance. This module applies both errors to a true
trajectory of camera poses (world <- camera, optical frame, z-up world), pose by pose:

    s_k  = s_{k-1} + |h(p_k - p_{k-1})|              distance travelled (h: the x, y part)
    th_k = kappa * s_k                                heading error (rad)
    p'_k = p'_{k-1} + Rz(kappa * (s_{k-1} + s_k) / 2) ((1 + eps) h(p_k - p_{k-1}) + v_k)
    R'_k = Rz(th_k) R_k

with s_0 = 0 and p'_0 = p_0, R'_0 = R_0 (drift starts where the robot starts), ``v_k`` the
vertical part of the step (not scaled), ``Rz`` a rotation about the world's z axis. Every true
step is turned by the heading error accumulated half-way along it and its length on the
ground scaled by 1 + eps; the orientation carries the heading error. With kappa = eps = 0 the
drifted poses are the true ones.

``DriftConfig`` draws kappa and eps from a seed: each with a random sign and a magnitude
uniform in [1 - spread, 1 + spread] times the nominal value, by default 0.03 rad per metre and
2% (the order of uncalibrated wheel odometry on a small indoor robot).
"""

from dataclasses import dataclass
import math

from mowm_ros.geometry import check_pose
import numpy as np


@dataclass(frozen=True)
class DriftConfig:
    """Nominal drift rates and the seed that draws one robot's signed rates from them."""

    yaw_per_metre: float = 0.03   # heading error growth, rad per metre travelled
    scale: float = 0.02           # distance scale error (0.02: distances 2% off)
    spread: float = 0.5           # magnitudes uniform in [1 - spread, 1 + spread] * nominal
    seed: int = 0

    def __post_init__(self):
        for name in ('yaw_per_metre', 'scale'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f'{name} must be finite and >= 0, got {value}')
        if not 0.0 <= self.spread <= 1.0:
            raise ValueError(f'spread must be in [0, 1], got {self.spread}')

    def rates(self):
        """Return this seed's signed (kappa rad/m, eps): random signs and magnitudes."""
        rng = np.random.default_rng(self.seed)
        signs = rng.choice([-1.0, 1.0], size=2)
        magnitudes = rng.uniform(1.0 - self.spread, 1.0 + self.spread, size=2)
        return (float(signs[0] * magnitudes[0] * self.yaw_per_metre),
                float(signs[1] * magnitudes[1] * self.scale))


def _rot_z(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class OdometryDrift:
    """
    Turn true camera poses, one at a time in the order driven, into drifted odometry poses.

    ``yaw_rate`` (kappa, rad per metre) and ``scale_error`` (eps) are the signed rates; use
    ``from_config`` to draw them from a seeded DriftConfig. See the module docstring for the
    formula.
    """

    def __init__(self, yaw_rate=0.0, scale_error=0.0):
        if not (math.isfinite(yaw_rate) and math.isfinite(scale_error)):
            raise ValueError(f'drift rates must be finite, got {yaw_rate}, {scale_error}')
        if scale_error <= -1.0:
            raise ValueError(f'scale_error must be > -1, got {scale_error}')
        self.yaw_rate = float(yaw_rate)
        self.scale_error = float(scale_error)
        self.reset()

    @classmethod
    def from_config(cls, config):
        return cls(*config.rates())

    def reset(self):
        """Forget the trajectory: the next pose starts a new one, without drift."""
        self.distance = 0.0
        self._true_position = None
        self._drifted_position = None

    @property
    def yaw_error(self):
        """Return the heading error now (rad): yaw_rate times the distance travelled."""
        return self.yaw_rate * self.distance

    def __call__(self, pose):
        """Return the drifted pose (4x4) of true camera ``pose``, the next along the drive."""
        pose = check_pose(pose)
        position = pose[:3, 3]
        if self._true_position is None:
            self._true_position = position.copy()
            self._drifted_position = position.copy()
            return pose.copy()
        step = position - self._true_position
        length = math.hypot(step[0], step[1])
        heading_mid = self.yaw_rate * (self.distance + 0.5 * length)
        self.distance += length
        step = np.array([(1.0 + self.scale_error) * step[0],
                         (1.0 + self.scale_error) * step[1], step[2]])
        self._drifted_position = self._drifted_position + _rot_z(heading_mid) @ step
        self._true_position = position.copy()
        drifted = np.eye(4)
        drifted[:3, :3] = _rot_z(self.yaw_error) @ pose[:3, :3]
        drifted[:3, 3] = self._drifted_position
        return drifted


def drift_trajectory(poses, config):
    """Return the drifted (N, 4, 4) poses of a true trajectory (N, 4, 4), drift from pose 0."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ValueError(f'poses must be (N, 4, 4), got shape {poses.shape}')
    drift = OdometryDrift.from_config(config)
    return np.stack([drift(pose) for pose in poses]) if len(poses) else poses.copy()
