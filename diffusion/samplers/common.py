"""What every sampler shares: the denoiser it calls, the step callback, and the few formulas they all use.

The k-diffusion formulation: x = x0 + sigma * eps, `model(x, sigma)` returns the x0 estimate ("denoised"),
`d = (x - denoised) / sigma` is the derivative of the probability-flow ODE dx/dsigma, and lambda = -log(sigma)
is the half log-SNR the exponential integrators (DPM-Solver++, UniPC, SEEDS, ...) step in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from diffusion.noise import NoiseSource

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, torch.Tensor, torch.Tensor], None]  # (step index, x, denoised)
__all__ = ["Denoise", "NoiseSource", "StepCallback"]


@runtime_checkable
class ReportsUncond(Protocol):
    """A guided denoiser that keeps the unguided (negative-prompt) estimate of its latest call, for CFG++."""

    last_uncond: torch.Tensor | None


def unguided(model: Denoise, denoised: torch.Tensor) -> torch.Tensor:
    """The unconditional x0 estimate of the call that just returned `denoised`.

    CFG++ (Chung et al. 2024) re-noises with the unguided estimate; a denoiser without guidance has only the
    one estimate, which is then both."""
    if isinstance(model, ReportsUncond) and model.last_uncond is not None:
        return model.last_uncond
    return denoised


def batch_sigma(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One sigma per batch item, as the denoiser takes it."""
    return sigma * x.new_ones([x.shape[0]])


def to_d(x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """dx/dsigma of the probability-flow ODE (Karras et al. 2022, eq. 3 with sigma(t) = t)."""
    return (x - denoised) / sigma


def ancestral_step(
    sigma: torch.Tensor, sigma_next: torch.Tensor, eta: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a step to sigma_next into a deterministic part down to sigma_down and fresh noise of sigma_up,
    with down² + up² = next² (Song et al. 2021, DDIM's sigma_t with eta). From an infinite level (a flow model's
    sigma 1 in VE terms) the formula is undefined and the whole step is fresh noise, as in the reference."""
    if not eta:
        return sigma_next, sigma_next * 0
    up = eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2) ** 0.5
    up = torch.where(up < sigma_next, up, sigma_next)
    return (sigma_next**2 - up**2) ** 0.5, up


def lagrange_weights(
    nodes: np.ndarray, a: float, b: float, weight: Callable[[np.ndarray], np.ndarray] | None = None, points: int = 24
) -> np.ndarray:
    """Integral over [a, b] of weight(tau) times each Lagrange basis polynomial on `nodes`.

    A multistep method's coefficients are these integrals: it interpolates its history of derivatives (or x0
    estimates) by a polynomial and integrates it over the step. Gauss-Legendre quadrature with `points` nodes is
    exact for the polynomial and accurate to float64 rounding for the smooth weights used here."""
    x, w = np.polynomial.legendre.leggauss(points)
    tau = (b - a) / 2 * x + (a + b) / 2
    scale = (b - a) / 2 * w * (weight(tau) if weight is not None else 1.0)
    out = np.empty(len(nodes))
    for j in range(len(nodes)):
        basis = np.ones_like(tau)
        for k in range(len(nodes)):
            if k != j:
                basis *= (tau - nodes[k]) / (nodes[j] - nodes[k])
        out[j] = float(np.sum(scale * basis))
    return out
