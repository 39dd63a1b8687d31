"""
Gaussian diffusion in v-parameterisation with a (shifted) cosine logSNR schedule and DDIM.

Why v-prediction with a logSNR schedule rather than EDM: it is what the method's official code
uses, it keeps the network's target well scaled at every noise level (x0-like at high noise,
eps-like at low noise), and eps, x0 and v are affine in each other for a given x_t, so the
experts' predictions can be composed exactly in eps space (a sum of scores) whatever network
produced them.
"""

from dataclasses import asdict, dataclass
import math

import torch


@dataclass
class DiffusionConfig:
    logsnr_min: float = -15.0
    logsnr_max: float = 15.0
    shift: float = 1.0          # simple-diffusion shift: logSNR += 2 log(shift)
    sampler_steps: int = 4
    clip_x0: bool = True

    def __post_init__(self):
        if not self.logsnr_min < self.logsnr_max:
            raise ValueError('logsnr_min must be below logsnr_max')
        if self.shift <= 0:
            raise ValueError(f'shift must be positive, got {self.shift}')
        if self.sampler_steps < 1:
            raise ValueError(f'sampler_steps must be at least 1, got {self.sampler_steps}')

    def to_dict(self) -> dict:
        return asdict(self)


class Diffusion:

    def __init__(self, config=None) -> None:
        self.config = config or DiffusionConfig()
        c = self.config
        shift = 2.0 * math.log(c.shift)
        # t in [0, 1] maps onto [logsnr_max, logsnr_min] (after the shift).
        self._t_min = math.atan(math.exp(-0.5 * (c.logsnr_max - shift)))
        self._t_max = math.atan(math.exp(-0.5 * (c.logsnr_min - shift)))
        self._shift = shift

    def logsnr(self, t) -> torch.Tensor:
        """Log signal-to-noise ratio at times ``t`` in [0, 1] (0 clean, 1 pure noise)."""
        angle = self._t_min + t * (self._t_max - self._t_min)
        return -2.0 * torch.log(torch.tan(angle)) + self._shift

    @staticmethod
    def alpha_sigma(logsnr) -> tuple:
        return torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()

    def add_noise(self, x0, t, noise) -> tuple:
        """Return (x_t, logsnr, v target) for clean ``x0`` at times ``t``."""
        logsnr = self.logsnr(t)
        alpha, sigma = (a.view(-1, 1, 1, 1) for a in self.alpha_sigma(logsnr))
        x_t = alpha * x0 + sigma * noise
        v = alpha * noise - sigma * x0
        return x_t, logsnr, v

    def loss(self, predict_v, x0, generator=None) -> torch.Tensor:
        """V-prediction MSE at uniformly drawn noise levels; ``predict_v(x_t, logsnr)``."""
        t = torch.rand(x0.shape[0], device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, generator=generator)
        x_t, logsnr, v = self.add_noise(x0, t, noise)
        return torch.mean((predict_v(x_t, logsnr).float() - v) ** 2)

    @staticmethod
    def x0_from_composed_v(x_t, logsnr, v, prior_weight) -> torch.Tensor:
        """
        Clean-sample estimate from a composed v prediction.

        A composition sum_i c_i eps_i of v-predicting networks equals
        ``prior_weight * sigma * x_t + alpha * v`` with ``prior_weight = sum_i c_i`` and
        ``v = sum_i c_i v_i``. Written this way, x0 never divides a small difference by alpha,
        which would lose all precision at high noise.
        """
        alpha, sigma = (a.view(-1, 1, 1, 1) for a in Diffusion.alpha_sigma(logsnr))
        return x_t * (alpha + (1.0 - prior_weight) * sigma ** 2 / alpha) - sigma * v

    @torch.no_grad()
    def sample(self, predict, noise, steps=None) -> torch.Tensor:
        """
        Deterministic DDIM from ``noise`` to a clean sample in ``steps`` network calls.

        ``predict(x_t, logsnr)`` returns ``(v, prior_weight)``: a (possibly composed) v
        prediction and the sum of its composition coefficients (1 for a single network or a
        contrastive composition).
        """
        steps = steps or self.config.sampler_steps
        x = noise
        times = torch.linspace(1.0, 0.0, steps + 1, device=noise.device)
        batch = noise.shape[0]
        for i in range(steps):
            logsnr = self.logsnr(times[i]).expand(batch)
            v, prior_weight = predict(x, logsnr)
            x0 = self.x0_from_composed_v(x, logsnr, v.float(), prior_weight)
            if self.config.clip_x0:
                x0 = x0.clamp(-1.0, 1.0)
            alpha, sigma = (a.view(-1, 1, 1, 1) for a in self.alpha_sigma(logsnr))
            eps = (x - alpha * x0) / sigma
            next_logsnr = self.logsnr(times[i + 1]).expand(batch)
            next_alpha, next_sigma = (a.view(-1, 1, 1, 1)
                                      for a in self.alpha_sigma(next_logsnr))
            x = next_alpha * x0 + next_sigma * eps
        return x.clamp(-1.0, 1.0) if self.config.clip_x0 else x
