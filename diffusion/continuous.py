"""Continuous noise levels: models trained on any sigma in a range rather than on 1000 discrete timesteps (EDM-style
models such as Playground v2.5 and CosXL, and v-prediction models with a continuous time input).

The schedule's 1000 reference sigmas are spaced evenly in log-sigma between sigma_min and sigma_max (what the
step schedulers that pick from a model's table use), and the UNet's time input is a function of sigma itself:
EDM's c_noise = ln(sigma) / 4 (Karras et al. 2022, table 1), or the angle 2/pi * atan(sigma) of the
variance-preserving path for the continuous v-prediction models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from diffusion.schedulers import DiscreteSchedule

REFERENCE_SIGMAS = 1000
TIME_INPUTS = ("edm", "v")


@dataclass(eq=False)
class ContinuousSchedule(DiscreteSchedule):
    """A sigma range with the UNet time input of `time_input`: "edm" (ln(sigma) / 4) or "v" (2/pi atan(sigma))."""

    time_input: str = "edm"

    @classmethod
    def between(cls, sigma_min: float, sigma_max: float, time_input: str) -> ContinuousSchedule:
        if time_input not in TIME_INPUTS:
            raise ValueError(f"unknown continuous time input {time_input!r}; expected one of {TIME_INPUTS}")
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"sigma_min ({sigma_min}) must be above 0 and below sigma_max ({sigma_max})")
        sigmas = torch.linspace(math.log(sigma_min), math.log(sigma_max), REFERENCE_SIGMAS).exp()
        return cls(sigmas, time_input)

    def zero_terminal_snr(self) -> DiscreteSchedule:
        raise ValueError("zsnr: a continuous schedule has no discrete training timesteps to rescale")

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        sigma = sigma.float()
        if self.time_input == "edm":
            return 0.25 * sigma.clamp(min=1e-10).log()
        return sigma.atan() / math.pi * 2

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = t.float()
        if self.time_input == "edm":
            return (t / 0.25).exp()
        return (t * math.pi / 2).tan()

    def percent_to_sigma(self, percent: float) -> float:
        """Log-linear from sigma_max (percent 0) to sigma_min (percent 1); beyond those, infinity and 0."""
        if percent <= 0:
            return 999999999.9
        if percent >= 1:
            return 0.0
        low, high = math.log(self.sigma_min), math.log(self.sigma_max)
        return math.exp(low + (high - low) * (1 - percent))

    def sigma_to_percent(self, sigma: float) -> float:
        low, high = math.log(self.sigma_min), math.log(self.sigma_max)
        return min(1.0, max(0.0, 1 - (math.log(max(sigma, 1e-10)) - low) / (high - low)))
