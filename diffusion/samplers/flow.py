"""SDE samplers on models whose latents are not in sigma form (flow matching), through the variance-exploding
view of the same process: the half-log-SNR stepping the reference does with explicit alpha factors.

A flow model's noisy latent x = (1 - s) x0 + s n, divided by alpha = 1 - s, is the VE latent x0 + (s / alpha) n
at level s / alpha = e^-lambda, lambda = log(alpha / s) the half log-SNR. An exponential integrator written in
sigma form (lambda = -log sigma, alpha = 1) run on x / alpha at that level is, back in flow terms, the same
integrator in the flow's half log-SNR with every x0 term scaled by alpha_t and every noise term by alpha_t times the
level, i.e. by sigma_t: DPM-Solver++ SDE (2M, 3M, the two-stage step), ER-SDE, SEEDS and SA-Solver as the reference
writes them for flow models. The denoiser, the noise source and the step callback still see the flow's own
latents and sigmas. As in the reference, a run from sigma 1 (lambda = -inf) starts from the scaling's `top` sigma
instead, and the model is called there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from diffusion.samplers.common import Denoise, NoiseSource, ReportsUncond, StepCallback
from diffusion.samplers.scaling import NoiseScaling


class LevelDenoiser:
    """D(x_ve, level) = D_flow(x_ve * alpha, sigma(level)); the listed sigmas map back exactly."""

    def __init__(self, inner: Denoise, scaling: NoiseScaling, sigmas: torch.Tensor, levels: torch.Tensor) -> None:
        self.inner = inner
        self.scaling = scaling
        self.exact = {float(v): float(s) for v, s in zip(levels, sigmas, strict=True)}
        self.last_sigma = sigmas[0]  # of the latest call: the step callback reports the latent it was given

    def sigma(self, level: torch.Tensor) -> torch.Tensor:
        exact = self.exact.get(float(level.flatten()[0]))
        return torch.full_like(level, exact) if exact is not None else self.scaling.sigma_at_level(level)

    def __call__(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        sigma = self.sigma(level)
        self.last_sigma = sigma.flatten()[0]
        return self.inner(x * self.scaling.alpha(sigma).reshape(-1, 1, 1, 1), sigma)

    @property
    def last_uncond(self) -> torch.Tensor | None:
        return self.inner.last_uncond if isinstance(self.inner, ReportsUncond) else None


def run_in_snr_view(
    fn: Callable[..., torch.Tensor],
    scaling: NoiseScaling,
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    options: Mapping[str, Any],
    level_options: Iterable[str] = (),
) -> torch.Tensor:
    """Run the sigma-form sampler `fn` from the latent `x` along `sigmas`; returns the latent at the last sigma.
    `level_options` name options that hold noise levels (sa_solver's `sde_sigmas`), converted too."""
    sigmas = scaling.snr_sigmas(sigmas)
    levels = scaling.level(sigmas)
    denoiser = LevelDenoiser(model, scaling, sigmas, levels)

    def level_noise(level: torch.Tensor, level_next: torch.Tensor) -> torch.Tensor:
        return noise(denoiser.sigma(level), denoiser.sigma(level_next))

    def level_callback(i: int, x_ve: torch.Tensor, denoised: torch.Tensor) -> None:
        cb(i, x_ve * scaling.alpha(denoiser.last_sigma), denoised)

    converted = dict(options)
    for name in level_options:
        if name in converted:
            converted[name] = tuple(float(scaling.level(torch.tensor(float(v)))) for v in converted[name])
    result = fn(denoiser, x / scaling.alpha(sigmas[0]), levels, level_noise, level_callback, **converted)
    return result * scaling.alpha(sigmas[-1])
