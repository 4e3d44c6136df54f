"""Noise-injecting samplers on flow-matching (rectified flow) models, through the variance-exploding view of the
same process.

A flow model's noisy latent x = (1 - s) x0 + s n, divided by alpha = 1 - s, is the VE latent x0 + (s / alpha) n.
Ancestral and SDE samplers assume the VE form when they add fresh noise (its variance adds to sigma², with no
signal to shrink), so they step on x / alpha at noise level s / alpha; the denoiser, the noise source and the step
callback still see the flow's own latent and sigmas. Back in flow terms a step's renoise scales the signal by
alpha_next / alpha_down and adds noise of sqrt(s_next² - (alpha_next s_down / alpha_down)²), the flow-specific
ancestral step, and the exponential integrators step in the flow's half log-SNR log(alpha / s).

Deterministic samplers need none of this: the probability-flow ODE dx/ds = (x - D) / s has the same form in both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from diffusion.samplers.common import Denoise, NoiseSource, ReportsUncond, StepCallback

# Flow sigma 1 (pure noise) has no VE counterpart: steps from it are taken from 1 - TOP (the model still sees 1).
TOP = 1e-4


def to_ve(sigma: torch.Tensor) -> torch.Tensor:
    s = sigma.clamp(max=1 - TOP)
    return s / (1 - s)


def to_flow(level: torch.Tensor) -> torch.Tensor:
    return level / (1 + level)


class VEDenoiser:
    """D(x_ve, s_ve) = D_flow(x_ve / (1 + s_ve), s_ve / (1 + s_ve)); the listed sigmas map back exactly."""

    def __init__(self, inner: Denoise, sigmas: torch.Tensor, levels: torch.Tensor) -> None:
        self.inner = inner
        self.exact = {float(v): float(s) for v, s in zip(levels, sigmas, strict=True)}
        self.last_level = levels[0]  # of the latest call: the step callback reports the latent it was given

    def flow_sigma(self, level: torch.Tensor) -> torch.Tensor:
        exact = self.exact.get(float(level.flatten()[0]))
        return torch.full_like(level, exact) if exact is not None else to_flow(level)

    def __call__(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        self.last_level = level.flatten()[0]
        return self.inner(x / (1 + level.reshape(-1, 1, 1, 1)), self.flow_sigma(level))

    @property
    def last_uncond(self) -> torch.Tensor | None:
        return self.inner.last_uncond if isinstance(self.inner, ReportsUncond) else None


def run_in_ve_space(
    fn: Callable[..., torch.Tensor],
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    options: Mapping[str, Any],
    level_options: Iterable[str] = (),
    end: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run sampler `fn` from the flow latent `x` along flow `sigmas`; returns the flow latent at the sigma `fn`
    ends at, `end` (the last sigma unless given). `level_options` name options that hold noise levels
    (sa_solver's `sde_sigmas`), converted too."""
    levels = to_ve(sigmas)
    denoiser = VEDenoiser(model, sigmas, levels)

    def ve_noise(level: torch.Tensor, level_next: torch.Tensor) -> torch.Tensor:
        return noise(denoiser.flow_sigma(level), denoiser.flow_sigma(level_next))

    def ve_callback(i: int, x_ve: torch.Tensor, denoised: torch.Tensor) -> None:
        cb(i, x_ve / (1 + denoiser.last_level), denoised)

    converted = dict(options)
    for name in level_options:
        if name in converted:
            converted[name] = tuple(float(to_ve(torch.tensor(float(v)))) for v in converted[name])
    result = fn(denoiser, x * (1 + levels[0]), levels, ve_noise, ve_callback, **converted)
    return result / (1 + to_ve(sigmas[-1] if end is None else end))
