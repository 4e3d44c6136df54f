"""Samplers that inject noise by design: DDPM's ancestral step (Ho et al. 2020), latent consistency sampling
(Luo et al. 2023), the extended reverse-time SDE solver ER-SDE-Solver-3 (Cui et al. 2023, arXiv:2309.06169) and
the stochastic exponential derivative-free solvers SEEDS-2/3 (Gonzalez et al. 2023, arXiv:2305.14267)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffusion.samplers.common import Denoise, NoiseSource, StepCallback, batch_sigma
from diffusion.samplers.scaling import VE, NoiseScaling


def ddpm(model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback) -> torch.Tensor:
    """The DDPM posterior step between any two noise levels, in the variance-preserving space x / sqrt(1 + sigma²)
    where alphabar = 1 / (1 + sigma²)."""
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        eps = (x - denoised) / sigma
        abar, abar_next = 1 / (sigma**2 + 1), 1 / (nxt**2 + 1)
        alpha = abar / abar_next
        x_vp = x / (1 + sigma**2).sqrt()
        x = (1 / alpha).sqrt() * (x_vp - (1 - alpha) * eps / (1 - abar).sqrt())
        if float(nxt) > 0:
            x = x + ((1 - alpha) * (1 - abar_next) / (1 - abar)).sqrt() * noise(sigma, nxt)
            x = x * (1 + nxt**2).sqrt()
    return x


def lcm(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    scaling: NoiseScaling = VE,
) -> torch.Tensor:
    """Latent consistency sampling: jump to the x0 estimate, then re-noise it to the next level as the model makes
    its latents (a flow model's (1 - sigma) x0 + sigma n)."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, batch_sigma(sigmas[i], x))
        cb(i, x, denoised)
        x = denoised
        if float(sigmas[i + 1]) > 0:
            x = scaling.renoise(x, noise(sigmas[i], sigmas[i + 1]), sigmas[i + 1])
    return x


ER_SDE_TYPES = ("ER-SDE", "Reverse-time SDE", "ODE")


def er_sde_noise_scaler(lam: torch.Tensor) -> torch.Tensor:
    """The ER-SDE paper's default noise scale function, lambda (e^(lambda^0.3) + 10)."""
    return lam * ((lam**0.3).exp() + 10.0)


def er_sde(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    s_noise: float = 1.0,
    max_stage: int = 3,
    solver_type: str = "ER-SDE",
    eta: float = 1.0,
) -> torch.Tensor:
    """ER-SDE-Solver in data prediction: the exact solution of the linear part (ratio r of the noise scale
    function), plus first and second divided differences of x0 whose weights are integrals of 1/scaler, taken
    numerically over 200 points. In sigma form the paper's lambda (sigma / alpha) is sigma itself.

    `solver_type` picks the noise scale function: "ER-SDE" the paper's default, "Reverse-time SDE" lambda^(eta+1)
    (eta = 0 is the ODE), "ODE" lambda (no noise)."""
    if solver_type not in ER_SDE_TYPES:
        raise ValueError(f"solver_type must be one of {', '.join(ER_SDE_TYPES)}")
    if solver_type == "ODE" or (solver_type == "Reverse-time SDE" and eta == 0):
        eta, s_noise = 0.0, 0.0
    noise_scaler: Callable[[torch.Tensor], torch.Tensor] = (
        er_sde_noise_scaler if solver_type == "ER-SDE" else (lambda lam: lam ** (eta + 1))
    )
    points = torch.arange(0, 200, dtype=torch.float32, device=x.device)
    old: torch.Tensor | None = None
    old_diff: torch.Tensor | None = None
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        stage = min(max_stage, i + 1)
        if float(nxt) == 0:
            x = denoised
            old = denoised
            continue
        r = noise_scaler(nxt) / noise_scaler(sigma)
        x = r * x + (1 - r) * denoised
        if stage >= 2 and old is not None:
            dt = nxt - sigma
            step = -dt / 200
            pos = nxt + points * step
            scaled = noise_scaler(pos)
            s = torch.sum(1 / scaled) * step
            diff = (denoised - old) / (sigma - sigmas[i - 1])
            x = x + (dt + s * noise_scaler(nxt)) * diff
            if stage >= 3 and old_diff is not None:
                s_u = torch.sum((pos - sigma) / scaled) * step
                second = (diff - old_diff) / ((sigma - sigmas[i - 2]) / 2)
                x = x + (dt**2 / 2 + s_u * noise_scaler(nxt)) * second
            old_diff = diff
        if s_noise > 0:
            spread = (nxt**2 - sigma**2 * r**2).sqrt().nan_to_num(nan=0.0)
            x = x + noise(sigma, nxt) * s_noise * spread
        old = denoised
    return x


def _phi_1(h: torch.Tensor) -> torch.Tensor:
    return torch.expm1(h)


def _phi_2(h: torch.Tensor) -> torch.Tensor:
    return (torch.expm1(h) - h) / h


def seeds_2(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    eta: float = 1.0,
    s_noise: float = 1.0,
    r: float = 0.5,
    solver_type: str = "phi_1",
) -> torch.Tensor:
    """SEEDS-2: a stage at the fraction r of the step in lambda, then the whole step; the noise of the two
    segments is one Brownian path (the first segment's noise decays into the second), so eta = 0 is the
    deterministic exponential midpoint/Heun step."""
    if solver_type not in ("phi_1", "phi_2"):
        raise ValueError("solver_type must be 'phi_1' or 'phi_2'")
    inject = eta > 0 and s_noise > 0
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        if float(nxt) == 0:
            x = denoised
            continue
        h = sigma.log() - nxt.log()
        h_eta = h * (eta + 1)
        sigma_r = (sigma.log() - r * h).exp()
        x_r = (sigma_r / sigma) * (-r * h * eta).exp() * x - _phi_1(-r * h_eta) * denoised
        if inject:
            path = (-torch.expm1(-2 * r * h * eta)).sqrt() * noise(sigma, sigma_r)
            x_r = x_r + path * sigma_r * s_noise
        denoised_r = model(x_r, batch_sigma(sigma_r, x))
        decay = (nxt / sigma) * (-h * eta).exp() * x
        if solver_type == "phi_1":
            x = decay - _phi_1(-h_eta) * torch.lerp(denoised, denoised_r, 1 / (2 * r))
        else:
            b2 = _phi_2(-h_eta) / r
            x = decay - ((_phi_1(-h_eta) - b2) * denoised + b2 * denoised_r)
        if inject:
            segment = (r - 1) * h * eta
            path = path * segment.exp() + (-torch.expm1(2 * segment)).sqrt() * noise(sigma_r, nxt)
            x = x + path * nxt * s_noise
    return x


def seeds_3(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    eta: float = 1.0,
    s_noise: float = 1.0,
    r_1: float = 1 / 3,
    r_2: float = 2 / 3,
) -> torch.Tensor:
    """SEEDS-3: stages at r_1 and r_2 of the step in lambda, the third-order exponential weights, one noise
    path through the three segments."""
    inject = eta > 0 and s_noise > 0
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        if float(nxt) == 0:
            x = denoised
            continue
        h = sigma.log() - nxt.log()
        h_eta = h * (eta + 1)
        s1, s2 = (sigma.log() - r_1 * h).exp(), (sigma.log() - r_2 * h).exp()
        x1 = (s1 / sigma) * (-r_1 * h * eta).exp() * x - _phi_1(-r_1 * h_eta) * denoised
        if inject:
            path = (-torch.expm1(-2 * r_1 * h * eta)).sqrt() * noise(sigma, s1)
            x1 = x1 + path * s1 * s_noise
        denoised_1 = model(x1, batch_sigma(s1, x))
        a2 = r_2 / r_1 * _phi_2(-r_2 * h_eta)
        a1 = _phi_1(-r_2 * h_eta) - a2
        x2 = (s2 / sigma) * (-r_2 * h * eta).exp() * x - (a1 * denoised + a2 * denoised_1)
        if inject:
            segment = (r_1 - r_2) * h * eta
            path = path * segment.exp() + (-torch.expm1(2 * segment)).sqrt() * noise(s1, s2)
            x2 = x2 + path * s2 * s_noise
        denoised_2 = model(x2, batch_sigma(s2, x))
        b3 = _phi_2(-h_eta) / r_2
        b1 = _phi_1(-h_eta) - b3
        x = (nxt / sigma) * (-h * eta).exp() * x - (b1 * denoised + b3 * denoised_2)
        if inject:
            segment = (r_2 - 1) * h * eta
            path = path * segment.exp() + (-torch.expm1(2 * segment)).sqrt() * noise(s2, nxt)
            x = x + path * nxt * s_noise
    return x
