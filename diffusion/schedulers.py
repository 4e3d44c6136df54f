"""Noise levels: a model's discrete training schedule in sigma form, and the sampling schedules built on it.

The k-diffusion formulation: x = x0 + sigma * noise, with sigma_t = sqrt((1 - alphabar_t) / alphabar_t) for the
model's 1000 training timesteps. A schedule is a decreasing list of `steps + 1` sigmas ending in 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from diffusion.names import SCHEDULER_NAMES


@dataclass(eq=False)
class DiscreteSchedule:
    """The training noise levels of a DDPM-style model (scaled-linear betas for the SD families)."""

    sigmas: torch.Tensor  # ascending, float32, one per training timestep

    @classmethod
    def scaled_linear(cls, beta_start: float, beta_end: float, steps: int) -> DiscreteSchedule:
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, steps, dtype=torch.float64) ** 2
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        return cls((((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).float())

    def zero_terminal_snr(self) -> DiscreteSchedule:
        """Lin et al. 2023, Alg. 1: shift and scale sqrt(alphabar) so the last timestep is pure noise (SNR 0) and
        the first is unchanged. The last alphabar is kept a hair above 0 so its sigma stays finite."""
        root = (1 / (1 + self.sigmas.double() ** 2)) ** 0.5
        first, last = root[0].clone(), root[-1].clone()
        alphas_cumprod = ((root - last) * first / (first - last)) ** 2
        alphas_cumprod[-1] = 4.8973451890853435e-08
        return DiscreteSchedule((((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).float())

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional timestep of a sigma: linear interpolation in log-sigma between training timesteps."""
        log_sigmas = self.sigmas.log().to(sigma.device)
        log_sigma = sigma.float().clamp(min=1e-10).log()
        dists = log_sigma[..., None] - log_sigmas
        low = dists.ge(0).cumsum(dim=-1).argmax(dim=-1).clamp(max=len(log_sigmas) - 2)
        lo, hi = log_sigmas[low], log_sigmas[low + 1]
        w = ((lo - log_sigma) / (lo - hi)).clamp(0, 1)
        return ((1 - w) * low + w * (low + 1)).view(sigma.shape)

    def sigma_to_percent(self, sigma: float) -> float:
        """How far through sampling a sigma lies (0 = pure noise, 1 = the end), by timestep: the inverse of
        `percent_to_sigma`, which conditioning ranges and per-step model options are placed with."""
        t = float(self.sigma_to_t(torch.tensor([sigma]))[0])
        return 1 - t / (len(self.sigmas) - 1)

    def percent_to_sigma(self, percent: float) -> float:
        """The sigma a fraction of the way through sampling (0 = the start, pure noise; 1 = the end), by
        timestep: how conditioning ranges and sampler defaults are placed on a model's schedule."""
        if percent <= 0:
            return 999999999.9
        if percent >= 1:
            return 0.0
        return float(self.t_to_sigma(torch.tensor((1 - percent) * (len(self.sigmas) - 1))))

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = t.float().clamp(0, len(self.sigmas) - 1)
        low = t.floor().long()
        high = t.ceil().long()
        w = t.frac()
        log_sigmas = self.sigmas.log().to(t.device)
        return ((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp()


def _append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas.float(), sigmas.new_zeros(1).float()])


def normal(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    """Timesteps evenly spaced from the highest to the lowest training timestep."""
    return _uniform_time(schedule, steps, include_end=True)


def sgm_uniform(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    """As `normal`, but spacing steps+1 points and dropping the last (the SGM/SDXL convention)."""
    return _uniform_time(schedule, steps, include_end=False)


def _uniform_time(schedule: DiscreteSchedule, steps: int, include_end: bool) -> torch.Tensor:
    start = schedule.sigma_to_t(torch.tensor(schedule.sigma_max))
    end = schedule.sigma_to_t(torch.tensor(schedule.sigma_min))
    ts = (
        torch.linspace(float(start), float(end), steps)
        if include_end
        else torch.linspace(float(start), float(end), steps + 1)[:-1]
    )
    return _append_zero(schedule.t_to_sigma(ts))


def karras(schedule: DiscreteSchedule, steps: int, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022), eq. 5: uniform in sigma^(1/rho)."""
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    lo, hi = schedule.sigma_min ** (1 / rho), schedule.sigma_max ** (1 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho)


def exponential(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    """Uniform in log-sigma."""
    return _append_zero(
        torch.linspace(math.log(schedule.sigma_max), math.log(schedule.sigma_min), steps, dtype=torch.float64).exp()
    )


def simple(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    """Every (N/steps)-th training sigma, from the top down."""
    n = len(schedule.sigmas)
    stride = n / steps
    return _append_zero(torch.stack([schedule.sigmas[-(1 + int(i * stride))] for i in range(steps)]))


def ddim_uniform(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    """DDIM's "uniform" timestep skip (Song et al. 2021, sec. 4.2) as the reference engine takes it: training
    timesteps 1, 1 + c, 1 + 2c, ... below N with c = N // steps (at least 1), top down, then 0. Where c does not
    divide N that is more than `steps` timesteps (7 steps: 8), and all of them run. A table whose second sigma is
    already ~0 ends on it instead of an appended 0, with the spacing planned for steps + 1."""
    n = len(schedule.sigmas)
    ends_at_zero = math.isclose(float(schedule.sigmas[1]), 0.0, abs_tol=1e-5)
    stride = max(n // (steps + 1 if ends_at_zero else steps), 1)
    picked = schedule.sigmas[1::stride].flip(0).float()
    return picked if ends_at_zero else _append_zero(picked)


def beta(schedule: DiscreteSchedule, steps: int, alpha: float = 0.6, beta_: float = 0.6) -> torch.Tensor:
    """Timesteps at the quantiles of a Beta(alpha, beta) distribution (Lee et al. 2024), denser at both ends."""
    n = len(schedule.sigmas)
    quantiles = 1 - np.linspace(0, 1, steps, endpoint=False)
    ts = np.rint(beta_ppf(quantiles, alpha, beta_) * (n - 1)).astype(np.int64)
    picked: list[int] = []
    for t in ts:  # drop repeats so every step moves
        if not picked or t != picked[-1]:
            picked.append(int(t))
    return _append_zero(schedule.sigmas[torch.tensor(picked)])


def beta_ppf(q: np.ndarray, a: float, b: float, grid: int = 200_001) -> np.ndarray:
    """Inverse CDF of Beta(a, b) by integrating its density on x = sin^2(theta) (smooth at both ends)."""
    theta = np.linspace(0.0, math.pi / 2, grid)
    density = np.sin(theta) ** (2 * a - 1) * np.cos(theta) ** (2 * b - 1)
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(theta))])
    cdf /= cdf[-1]
    return np.interp(q, cdf, np.sin(theta) ** 2)


def linear_quadratic(
    schedule: DiscreteSchedule, steps: int, threshold_noise: float = 0.025, linear_steps: int | None = None
) -> torch.Tensor:
    """Mochi's schedule (Genmo 2024): the noise fraction falls linearly to `threshold_noise` over the first half
    of the steps, then along a quadratic that meets the line smoothly and reaches 1; times sigma_max."""
    if steps == 1:
        fractions = [1.0, 0.0]
    else:
        linear = steps // 2 if linear_steps is None else linear_steps
        line = [i * threshold_noise / linear for i in range(linear)]
        gap = linear - threshold_noise * steps
        quadratic_steps = steps - linear
        a = gap / (linear * quadratic_steps**2)
        b = threshold_noise / linear - 2 * gap / quadratic_steps**2
        c = a * linear**2
        curve = [a * i**2 + b * i + c for i in range(linear, steps)]
        fractions = [1.0 - f for f in [*line, *curve, 1.0]]
    return torch.tensor(fractions, dtype=torch.float64) * schedule.sigma_max


def kl_optimal(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    """The schedule minimising the KL divergence of each step (Tiankai et al. 2024, "Align your steps" for
    ODEs, as in A1111 PR 15608): uniform in arctan(sigma)."""
    ramp = torch.arange(steps, dtype=torch.float64) / max(steps - 1, 1)
    top, bottom = math.atan(schedule.sigma_max), math.atan(schedule.sigma_min)
    return _append_zero((ramp * bottom + (1 - ramp) * top).tan())


SCHEDULERS: dict[str, Callable[[DiscreteSchedule, int], torch.Tensor]] = {
    "simple": simple,
    "sgm_uniform": sgm_uniform,
    "karras": karras,
    "exponential": exponential,
    "ddim_uniform": ddim_uniform,
    "beta": beta,
    "normal": normal,
    "linear_quadratic": linear_quadratic,
    "kl_optimal": kl_optimal,
}
if tuple(SCHEDULERS) != SCHEDULER_NAMES:
    raise RuntimeError("diffusion.schedulers: SCHEDULERS must list diffusion.names.SCHEDULER_NAMES, in order")


def sigmas_for(schedule: DiscreteSchedule, scheduler: str, steps: int) -> torch.Tensor:
    if scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    if steps < 1:
        raise ValueError("steps must be at least 1")
    return SCHEDULERS[scheduler](schedule, steps).float()


# Schedules over an explicit sigma range, for the scheduler nodes (float32, as those nodes give them).


def karras_range(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022), eq. 5 between any two sigmas."""
    ramp = torch.linspace(0, 1, steps)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho)


def exponential_range(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), steps).exp())


def polyexponential_range(steps: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    """A polynomial of degree rho in log-sigma (rho = 1: exponential; larger rho: longer at high noise)."""
    ramp = torch.linspace(1, 0, steps) ** rho
    return _append_zero(torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)))


def vp_range(steps: int, beta_d: float = 19.9, beta_min: float = 0.1, eps_s: float = 1e-3) -> torch.Tensor:
    """The continuous VP-SDE's sigma(t) = sqrt(exp(beta_d t²/2 + beta_min t) - 1), t uniform from 1 to eps_s
    (Song et al. 2021)."""
    t = torch.linspace(1, eps_s, steps)
    return _append_zero(torch.sqrt(torch.special.expm1(beta_d * t**2 / 2 + beta_min * t)))


def laplace_range(steps: int, sigma_min: float, sigma_max: float, mu: float = 0.0, beta: float = 0.5) -> torch.Tensor:
    """Log-sigma at the quantiles of a Laplace(mu, beta) distribution (Tiankai et al. 2024): dense around
    sigma = e^mu. Clamped to the range, and (as published) without a final 0."""
    x = torch.linspace(0, 1, steps)
    log_sigma = mu - beta * torch.sign(0.5 - x) * torch.log(1 - 2 * torch.abs(0.5 - x) + 1e-5)
    return torch.clamp(torch.exp(log_sigma), min=sigma_min, max=sigma_max)


def loglinear_interp(levels: list[float], count: int) -> np.ndarray:
    """`count` decreasing values interpolated linearly in log space through a published list of noise levels."""
    xs = np.linspace(0, 1, len(levels))
    ys = np.log(np.asarray(levels[::-1], dtype=np.float64))
    return np.exp(np.interp(np.linspace(0, 1, count), xs, ys))[::-1].copy()


def published_schedule(levels: list[float], steps: int, denoise: float) -> torch.Tensor:
    """A published list of noise levels stretched to `steps` (log-linearly), its last `steps * denoise` steps
    kept, ending at 0: how the Align-Your-Steps, GITS and Optimal-Steps tables are used."""
    if denoise <= 0:
        return torch.zeros(0)
    total = steps if denoise >= 1 else round(steps * denoise)
    sigmas = np.asarray(levels, dtype=np.float64) if steps + 1 == len(levels) else loglinear_interp(levels, steps + 1)
    sigmas = sigmas[-(total + 1) :].copy()
    sigmas[-1] = 0
    return torch.tensor(sigmas, dtype=torch.float32)
