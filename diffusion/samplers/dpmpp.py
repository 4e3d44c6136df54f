"""DPM-Solver++ (Lu et al. 2022, arXiv:2211.01095): exponential integrators in data prediction, stepping in
lambda = -log(sigma), where the linear part of the ODE is solved exactly and only x0 estimates are extrapolated.

Single-step 2S (ancestral), the stochastic two-stage "SDE" step, multistep 2M, and the SDE multistep forms 2M and
3M (Gonzalez et al. 2023's variance-preserving noise injection); RES multistep (Zhang et al. 2023,
arXiv:2308.02157). In sigma form alpha = 1, so the paper's alpha_t factors drop out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffusion.samplers.common import (
    Denoise,
    NoiseSource,
    StepCallback,
    ancestral_step,
    batch_sigma,
    to_d,
    unguided,
)
from diffusion.samplers.scaling import VE, NoiseScaling


def _lam(sigma: torch.Tensor) -> torch.Tensor:
    return -sigma.log()


def dpmpp_2s_ancestral(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    eta: float = 1.0,
    s_noise: float = 1.0,
    scaling: NoiseScaling = VE,
) -> torch.Tensor:
    """DPM-Solver++(2S) down to sigma_down through the midpoint in the model's half log-SNR, then fresh noise of
    sigma_up (the signal rescaled as the model's noise scaling needs)."""
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        step = scaling.ancestral_step(sigma, nxt, eta)
        if float(step.down) == 0:
            x = x + to_d(x, denoised, sigma) * (step.down - sigma)
        else:
            x = _two_stage(model, x, sigma, step.down, denoised, scaling, lambda estimate: estimate)
        if float(nxt) > 0:
            x = step.scale * x + noise(sigma, nxt) * s_noise * step.up
    return x


def _two_stage(
    model: Denoise,
    x: torch.Tensor,
    sigma: torch.Tensor,
    down: torch.Tensor,
    estimate: torch.Tensor,
    scaling: NoiseScaling,
    pick: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """DPM-Solver++(2S) from sigma to down: a first-order step to the lambda midpoint with `estimate`, then the
    whole step with the midpoint's estimate (`pick` chooses it from the model's output: CFG++ takes the unguided
    one). x_t = (sigma_t / sigma_s) x_s - alpha_t expm1(-h) D: in sigma form alpha = 1, and on a flow model it
    is the exact DDIM step (sigma_t / sigma_s) x + (1 - sigma_t / sigma_s) D."""
    h = scaling.half_log_snr(down) - scaling.half_log_snr(sigma)
    mid = scaling.midpoint(sigma, down)
    x_mid = (mid / sigma) * x - scaling.alpha(mid) * torch.expm1(-h / 2) * estimate
    estimate_mid = pick(model(x_mid, batch_sigma(mid, x)))
    return (down / sigma) * x - scaling.alpha(down) * torch.expm1(-h) * estimate_mid


def dpmpp_2s_ancestral_cfg_pp(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    eta: float = 1.0,
    s_noise: float = 1.0,
    scaling: NoiseScaling = VE,
) -> torch.Tensor:
    """The 2S step on the unguided estimates, with the step's guidance (guided minus unguided x0 at sigma, times
    alpha_next) added once at its end (CFG++)."""
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        uncond = unguided(model, denoised)
        guidance = denoised - uncond
        cb(i, x, denoised)
        step = scaling.ancestral_step(sigma, nxt, eta)
        if float(step.down) == 0:
            x = x + to_d(x, uncond, sigma) * (step.down - sigma)
        else:
            x = _two_stage(model, x, sigma, step.down, uncond, scaling, lambda out: unguided(model, out))
        if float(nxt) > 0:
            x = step.scale * x + noise(sigma, nxt) * s_noise * step.up
        x = x + scaling.alpha(nxt) * guidance
    return x


def dpmpp_sde(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    eta: float = 1.0,
    s_noise: float = 1.0,
    r: float = 0.5,
) -> torch.Tensor:
    """Two stages per step, each an ancestral DPM-Solver++ step: to the point r of the way in lambda, then the
    whole step from x with the two x0 estimates blended (weight 1/(2r) on the second)."""
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        if float(nxt) == 0:
            x = denoised
            continue
        lam_s, lam_t = _lam(sigma), _lam(nxt)
        sigma_r = (-(lam_s + r * (lam_t - lam_s))).exp()
        down, up = ancestral_step(sigma, sigma_r, eta)
        h_ = _lam(down) - lam_s
        x_r = (-h_).exp() * x - torch.expm1(-h_) * denoised
        if eta > 0 and s_noise > 0:
            x_r = x_r + noise(sigma, sigma_r) * s_noise * up
        denoised_r = model(x_r, batch_sigma(sigma_r, x))
        fac = 1 / (2 * r)
        blend = (1 - fac) * denoised + fac * denoised_r
        down, up = ancestral_step(sigma, nxt, eta)
        h_ = _lam(down) - lam_s
        x = (-h_).exp() * x - torch.expm1(-h_) * blend
        if eta > 0 and s_noise > 0:
            x = x + noise(sigma, nxt) * s_noise * up  # the whole step's increment: stage two restarts from x
    return x


def dpmpp_2m(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback
) -> torch.Tensor:
    """DPM-Solver++(2M): the previous x0 estimate extrapolates this one linearly in lambda; first order on the
    first step and on the step to 0."""
    old: torch.Tensor | None = None
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        if float(nxt) == 0:
            x = denoised
            continue
        h = _lam(nxt) - _lam(sigma)
        blend = denoised
        if old is not None:
            r = (_lam(sigma) - _lam(sigmas[i - 1])) / h
            blend = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
        x = (nxt / sigma) * x - torch.expm1(-h) * blend
        old = denoised
    return x


def dpmpp_2m_cfg_pp(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback
) -> torch.Tensor:
    """2M with CFG++: x_next = denoised + e^-h (x - uncond) plus the multistep correction on the estimates."""
    old_uncond: torch.Tensor | None = None
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        uncond = unguided(model, denoised)
        cb(i, x, denoised)
        if float(nxt) == 0:
            x = denoised
            continue
        h = _lam(nxt) - _lam(sigma)
        x = denoised + torch.exp(-h) * (x - uncond)
        if old_uncond is not None:
            r = (_lam(sigma) - _lam(sigmas[i - 1])) / h
            x = x - torch.expm1(-h) * (1 / (2 * r)) * (denoised - old_uncond)
        old_uncond = uncond
    return x


def dpmpp_2m_sde(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    eta: float = 1.0,
    s_noise: float = 1.0,
    solver_type: str = "midpoint",
) -> torch.Tensor:
    """DPM-Solver++(2M) SDE: the data-prediction SDE solved exactly in its linear part, the x0 estimate
    extrapolated as in 2M (midpoint) or with the exponential-integrator weight (heun)."""
    if solver_type not in ("midpoint", "heun"):
        raise ValueError("solver_type must be 'midpoint' or 'heun'")
    old: torch.Tensor | None = None
    h_last: torch.Tensor | None = None
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        if float(nxt) == 0:
            x = denoised
            continue
        h = _lam(nxt) - _lam(sigma)
        h_eta = h * (eta + 1)
        x = (nxt / sigma) * (-h * eta).exp() * x - torch.expm1(-h_eta) * denoised
        if old is not None and h_last is not None:
            r = h_last / h
            if solver_type == "heun":
                x = x + (-torch.expm1(-h_eta) / (-h_eta) + 1) * (1 / r) * (denoised - old)
            else:
                x = x - 0.5 * torch.expm1(-h_eta) * (1 / r) * (denoised - old)
        if eta > 0 and s_noise > 0:
            x = x + noise(sigma, nxt) * nxt * (-torch.expm1(-2 * h * eta)).sqrt() * s_noise
        old, h_last = denoised, h
    return x


def dpmpp_3m_sde(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> torch.Tensor:
    """DPM-Solver++(3M) SDE: first and second divided differences of the last three x0 estimates in lambda,
    weighted by phi_2 and phi_3 of -h(1 + eta)."""
    d1_old: torch.Tensor | None = None
    d2_old: torch.Tensor | None = None
    h1: torch.Tensor | None = None
    h2: torch.Tensor | None = None
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        h: torch.Tensor | None = None
        if float(nxt) == 0:
            x = denoised
        else:
            h = _lam(nxt) - _lam(sigma)
            h_eta = h * (eta + 1)
            x = (nxt / sigma) * (-h * eta).exp() * x - torch.expm1(-h_eta) * denoised
            phi_2 = torch.expm1(-h_eta) / h_eta + 1
            if h2 is not None and h1 is not None and d1_old is not None and d2_old is not None:
                r0, r1 = h1 / h, h2 / h
                diff0 = (denoised - d1_old) / r0
                diff1 = (d1_old - d2_old) / r1
                first = diff0 + (diff0 - diff1) * r0 / (r0 + r1)
                second = (diff0 - diff1) / (r0 + r1)
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * first - phi_3 * second
            elif h1 is not None and d1_old is not None:
                x = x + phi_2 * (denoised - d1_old) / (h1 / h)
            if eta > 0 and s_noise > 0:
                x = x + noise(sigma, nxt) * nxt * (-torch.expm1(-2 * h * eta)).sqrt() * s_noise
        d1_old, d2_old = denoised, d1_old
        h1, h2 = h, h1
    return x


def res_multistep(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    eta: float = 0.0,
    s_noise: float = 1.0,
    cfg_pp: bool = False,
) -> torch.Tensor:
    """RES second-order multistep: the exponential-integrator weights b1 = phi1 - phi2/c2, b2 = phi2/c2 on this
    and the previous x0 estimate, c2 the previous step's length relative to this one. eta > 0 makes it ancestral
    (steps to sigma_down, fresh noise of sigma_up); cfg_pp steps on the unguided estimate and adds the guidance."""
    old: torch.Tensor | None = None
    old_down: torch.Tensor | None = None
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        uncond = unguided(model, denoised) if cfg_pp else denoised
        cb(i, x, denoised)
        down, up = ancestral_step(sigma, nxt, eta)
        if float(down) == 0 or old is None or old_down is None:
            # Euler; with CFG++ from the guided x0 along the unguided direction (for cfg_pp, uncond != denoised)
            x = denoised + to_d(x, uncond, sigma) * down if cfg_pp else x + to_d(x, denoised, sigma) * (down - sigma)
        else:
            h = _lam(down) - _lam(sigma)
            c2 = (_lam(sigmas[i - 1]) - _lam(old_down)) / h
            phi1 = torch.expm1(-h) / -h
            phi2 = (phi1 - 1) / -h
            b1 = torch.nan_to_num(phi1 - phi2 / c2, nan=0.0)
            b2 = torch.nan_to_num(phi2 / c2, nan=0.0)
            if cfg_pp:
                x = x + (denoised - uncond)
            x = (-h).exp() * x + h * (b1 * uncond + b2 * old)
        if float(nxt) > 0 and eta > 0:
            x = x + noise(sigma, nxt) * s_noise * up
        old, old_down = uncond, down
    return x
