"""How a model's noisy latent is made from the clean one: what samplers that add noise must know about a model.

U-Net models (EPS, V, EDM, x0) in k-diffusion's sigma form: x = x0 + sigma n, signal scale alpha = 1 ("variance
exploding"). Flow-matching models (rectified flow, the reference's CONST): x = (1 - sigma) x0 + sigma n, alpha =
1 - sigma. Both share the probability-flow ODE dx/dsigma = (x - D) / sigma, so deterministic Euler-type steps need
neither; a step that adds fresh noise, or that steps in the half log-SNR lambda = log(alpha / sigma), must scale
the signal as its model does. A sampler takes a `NoiseScaling` and asks it, so the U-Net path is the VE case with
every factor exactly 1 and stays bit-identical to the pure sigma-form formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffusion.samplers.common import ancestral_step as ve_ancestral_step


@dataclass(frozen=True)
class AncestralStep:
    """One ancestral step to sigma_next: the deterministic part steps to `down`, then x becomes
    scale * x + up * fresh noise, which lands on the model's marginal at sigma_next."""

    down: torch.Tensor
    up: torch.Tensor
    scale: torch.Tensor


class NoiseScaling:
    """The VE (sigma-form) scaling; `RectifiedFlow` overrides what differs."""

    # Whether a sampler written in sigma form steps this model's latents as they are; otherwise the SDE samplers
    # step on the equivalent VE latents x / alpha at level sigma / alpha (diffusion.samplers.flow).
    native_sigma_form = True

    def alpha(self, sigma: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(sigma)

    def level(self, sigma: torch.Tensor) -> torch.Tensor:
        """sigma / alpha: the VE noise level of the same signal-to-noise ratio, e^-lambda."""
        return sigma

    def sigma_at_level(self, level: torch.Tensor) -> torch.Tensor:
        return level

    def half_log_snr(self, sigma: torch.Tensor) -> torch.Tensor:
        return -sigma.log()

    def ancestral_step(self, sigma: torch.Tensor, sigma_next: torch.Tensor, eta: float) -> AncestralStep:
        """DDIM's split (Song et al. 2021): down² + up² = next², nothing rescaled."""
        down, up = ve_ancestral_step(sigma, sigma_next, eta)
        return AncestralStep(down, up, torch.ones_like(sigma_next))

    def midpoint(self, sigma: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
        """The sigma halfway from sigma to down in half log-SNR (DPM-Solver++(2S)'s second stage)."""
        h = self.half_log_snr(down) - self.half_log_snr(sigma)
        return (sigma.log() - h / 2).exp()

    def renoise(self, x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The latent at `sigma` made from the clean `x0` and unit `noise`."""
        return x0 + noise * sigma

    def snr_sigmas(self, sigmas: torch.Tensor) -> torch.Tensor:
        """The sigmas a sampler stepping in half log-SNR takes: every lambda finite."""
        return sigmas


@dataclass(frozen=True)
class RectifiedFlow(NoiseScaling):
    """x = (1 - sigma) x0 + sigma n. `top`: where a half-log-SNR sampler starts instead of sigma 1 (lambda = -inf),
    the model's sigma 0.01% of the way into sampling, as the reference offsets it."""

    top: float = 0.9999
    native_sigma_form = False

    def alpha(self, sigma: torch.Tensor) -> torch.Tensor:
        return 1 - sigma

    def level(self, sigma: torch.Tensor) -> torch.Tensor:
        return sigma / (1 - sigma)

    def sigma_at_level(self, level: torch.Tensor) -> torch.Tensor:
        return level / (1 + level)

    def half_log_snr(self, sigma: torch.Tensor) -> torch.Tensor:
        return -torch.logit(sigma)

    def ancestral_step(self, sigma: torch.Tensor, sigma_next: torch.Tensor, eta: float) -> AncestralStep:
        """The rectified-flow ancestral step: step down by the ratio 1 + (next / sigma - 1) eta (eta 1: down =
        next² / sigma), then scale the signal from alpha_down to alpha_next and add the noise that makes the
        total noise sigma_next: up² = next² - (down alpha_next / alpha_down)²."""
        down = sigma_next * (1 + (sigma_next / sigma - 1) * eta)
        scale = (1 - sigma_next) / (1 - down)
        up = (sigma_next**2 - (down * scale) ** 2) ** 0.5
        return AncestralStep(down, up, scale)

    def midpoint(self, sigma: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
        """Halfway in lambda = log((1 - sigma) / sigma); from pure noise (lambda = -inf) 0.9999, as the
        reference's rectified-flow DPM-Solver++(2S) takes it."""
        if float(sigma) >= 1:
            return torch.full_like(sigma, 0.9999)
        lam = self.half_log_snr(sigma)
        return torch.sigmoid(-(lam + (self.half_log_snr(down) - lam) / 2))

    def renoise(self, x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return sigma * noise + (1 - sigma) * x0

    def snr_sigmas(self, sigmas: torch.Tensor) -> torch.Tensor:
        if len(sigmas) < 2 or float(sigmas[0]) < 1:
            return sigmas
        moved = sigmas.clone()
        moved[0] = self.top
        return moved


VE = NoiseScaling()
