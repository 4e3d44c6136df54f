"""Steps on the probability-flow ODE in sigma (Karras et al. 2022, "Elucidating the design space", Alg. 1-2):
Euler, Heun, the DPM-Solver-2 style midpoint step, their ancestral forms, Heun++ and the CFG++ Euler steps."""

from __future__ import annotations

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


def euler(model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback) -> torch.Tensor:
    """x <- x + d * (sigma_next - sigma)."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, batch_sigma(sigmas[i], x))
        cb(i, x, denoised)
        x = x + to_d(x, denoised, sigmas[i]) * (sigmas[i + 1] - sigmas[i])
    return x


def euler_ancestral(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    eta: float = 1.0,
    s_noise: float = 1.0,
    scaling: NoiseScaling = VE,
) -> torch.Tensor:
    """Euler down to sigma_down, then fresh noise of sigma_up (with the signal rescaled as the model's noise
    scaling needs): each step forgets part of the path."""
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        step = scaling.ancestral_step(sigma, nxt, eta)
        if float(step.down) == 0:
            x = denoised
            continue
        x = x + to_d(x, denoised, sigma) * (step.down - sigma)
        x = step.scale * x + noise(sigma, nxt) * s_noise * step.up
    return x


def euler_ancestral_cfg_pp(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    eta: float = 1.0,
    s_noise: float = 1.0,
    scaling: NoiseScaling = VE,
) -> torch.Tensor:
    """CFG++ (Chung et al. 2024): jump to the guided x0, then re-noise along the *unguided* noise direction, so
    guidance moves the estimate without pushing the sample off the data manifold (use cfg around 1-2).

    The DDIM split of the step is taken between the VE levels sigma / alpha and scaled back by alpha_next (the
    reference's form for any model: alpha = 1 in sigma form; from a flow model's sigma 1 the step renoises all)."""
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        if float(nxt) == 0:
            x = denoised
            continue
        alpha, alpha_next = scaling.alpha(sigma), scaling.alpha(nxt)
        d = to_d(x, alpha * unguided(model, denoised), sigma)
        down, up = ancestral_step(sigma / alpha, nxt / alpha_next, eta)
        x = alpha_next * denoised + d * (alpha_next * down)
        if eta > 0 and s_noise > 0:
            x = x + noise(sigma, nxt) * s_noise * (alpha_next * up)
    return x


def euler_cfg_pp(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    scaling: NoiseScaling = VE,
) -> torch.Tensor:
    """The deterministic CFG++ Euler step: x <- alpha_next denoised + d_uncond * sigma_next."""
    return euler_ancestral_cfg_pp(model, x, sigmas, noise, cb, eta=0.0, s_noise=0.0, scaling=scaling)


def heun(model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback) -> torch.Tensor:
    """Karras Alg. 1: an Euler predictor, then the trapezoid of its two slopes; Euler for the step to 0."""
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        d = to_d(x, denoised, sigma)
        x_euler = x + d * (nxt - sigma)
        if float(nxt) == 0:
            x = x_euler
            continue
        d2 = to_d(x_euler, model(x_euler, batch_sigma(nxt, x)), nxt)
        x = x + (d + d2) / 2 * (nxt - sigma)
    return x


def heunpp2(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback
) -> torch.Tensor:
    """Heun++ (from the MIT-licensed sd-webui-samplers-scheduler): look two steps ahead with Euler and blend the
    three slopes, weighting the look-ahead ones by their sigma relative to the first; Heun, then Euler, at the
    end of the schedule."""
    end = float(sigmas[-1])
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        d = to_d(x, denoised, sigma)
        dt = nxt - sigma
        if float(nxt) == end:
            x = x + d * dt
            continue
        x2 = x + d * dt
        d2 = to_d(x2, model(x2, batch_sigma(nxt, x)), nxt)
        if float(sigmas[i + 2]) == end:
            w2 = nxt / (2 * sigmas[0])
            x = x + ((1 - w2) * d + w2 * d2) * dt
            continue
        after = sigmas[i + 2]
        x3 = x2 + d2 * (after - nxt)
        d3 = to_d(x3, model(x3, batch_sigma(after, x)), after)
        w2, w3 = nxt / (3 * sigmas[0]), after / (3 * sigmas[0])
        x = x + ((1 - w2 - w3) * d + w2 * d2 + w3 * d3) * dt
    return x


def dpm_2(model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback) -> torch.Tensor:
    """DPM-Solver-2 in Karras' form: the slope at the log-sigma midpoint carries the whole step."""
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        d = to_d(x, denoised, sigma)
        if float(nxt) == 0:
            x = x + d * (nxt - sigma)
            continue
        mid = (sigma.log() / 2 + nxt.log() / 2).exp()
        x_mid = x + d * (mid - sigma)
        d_mid = to_d(x_mid, model(x_mid, batch_sigma(mid, x)), mid)
        x = x + d_mid * (nxt - sigma)
    return x


def dpm_2_ancestral(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    eta: float = 1.0,
    s_noise: float = 1.0,
    scaling: NoiseScaling = VE,
) -> torch.Tensor:
    """The midpoint step down to sigma_down, then fresh noise of sigma_up (the signal rescaled as the model's
    noise scaling needs)."""
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        step = scaling.ancestral_step(sigma, nxt, eta)
        down = step.down
        d = to_d(x, denoised, sigma)
        if float(down) == 0:
            x = x + d * (down - sigma)
            continue
        mid = (sigma.log() / 2 + down.log() / 2).exp()
        x_mid = x + d * (mid - sigma)
        d_mid = to_d(x_mid, model(x_mid, batch_sigma(mid, x)), mid)
        x = x + d_mid * (down - sigma)
        x = step.scale * x + noise(sigma, nxt) * s_noise * step.up
    return x
