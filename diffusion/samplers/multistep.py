"""Linear multistep methods on the ODE in sigma: one model call per step, the history of slopes extrapolated.

LMS (Adams-Bashforth on the actual sigma grid), iPNDM with fixed and variable-step coefficients and DEIS-tAB
(Zhang & Chen 2023, "Fast sampling of diffusion models with exponential integrator"), and the gradient-estimation
sampler (Permenter & Yuan 2024, "Interpreting and improving diffusion models from an optimization perspective").
"""

from __future__ import annotations

import math

import numpy as np
import torch

from diffusion.samplers.common import (
    Denoise,
    NoiseSource,
    StepCallback,
    batch_sigma,
    lagrange_weights,
    to_d,
    unguided,
)


def lms(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback, order: int = 4
) -> torch.Tensor:
    """Integrate the Lagrange polynomial through the last `order` slopes (in sigma) over the step."""
    sig = sigmas.double().cpu().numpy()
    ds: list[torch.Tensor] = []  # newest first
    for i in range(len(sigmas) - 1):
        denoised = model(x, batch_sigma(sigmas[i], x))
        cb(i, x, denoised)
        ds.insert(0, to_d(x, denoised, sigmas[i]))
        del ds[order:]
        if float(sigmas[i + 1]) == 0:
            x = denoised
            continue
        nodes = sig[[i - j for j in range(len(ds))]]
        coeffs = lagrange_weights(nodes, sig[i], sig[i + 1])
        x = x + sum(float(c) * d for c, d in zip(coeffs, ds, strict=True))
    return x


# Adams-Bashforth weights for equal steps, newest slope first (iPNDM, Zhang & Chen 2023, eq. 18).
_AB = {1: (1.0,), 2: (3 / 2, -1 / 2), 3: (23 / 12, -16 / 12, 5 / 12), 4: (55 / 24, -59 / 24, 37 / 24, -9 / 24)}


def ipndm(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback, max_order: int = 4
) -> torch.Tensor:
    """Improved PNDM: Adams-Bashforth with the equal-step weights whatever the spacing, warming up from Euler."""
    ds: list[torch.Tensor] = []  # newest first
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        ds.insert(0, to_d(x, denoised, sigma))
        del ds[max_order:]
        if float(nxt) == 0:
            x = denoised
            continue
        x = x + (nxt - sigma) * sum(w * d for w, d in zip(_AB[len(ds)], ds, strict=True))
    return x


def _ipndm_v_weights(h: list[float]) -> tuple[float, ...]:
    """Variable-step Adams-Bashforth weights, newest first, from the step sizes h[0] (this step), h[1], ...
    (h[k] = sigma_{i-k+1} - sigma_{i-k}); for equal steps they reduce to the fixed iPNDM weights."""
    if len(h) == 1:
        return (1.0,)
    q = h[0] / h[1]
    if len(h) == 2:
        return ((2 + q) / 2, -q / 2)
    t1 = (1 - h[0] / (3 * (h[0] + h[1])) * (h[0] * (h[0] + h[1])) / (h[1] * (h[1] + h[2]))) / 2
    if len(h) == 3:
        return ((2 + q) / 2 + t1, -q / 2 - (1 + h[1] / h[2]) * t1, t1 * h[1] / h[2])
    ratio = h[1] * (h[1] + h[2]) / (h[2] * (h[2] + h[3]))
    t2 = (
        ((1 - h[0] / (3 * (h[0] + h[1]))) / 2 + (1 - h[0] / (2 * (h[0] + h[1]))) * h[0] / (6 * (h[0] + h[1] + h[2])))
        * (h[0] * (h[0] + h[1]) * (h[0] + h[1] + h[2]))
        / (h[1] * (h[1] + h[2]) * (h[1] + h[2] + h[3]))
    )
    return (
        (2 + q) / 2 + t1 + t2,
        -q / 2 - (1 + h[1] / h[2]) * t1 - (1 + h[1] / h[2] + ratio) * t2,
        t1 * h[1] / h[2] + (h[1] / h[2] + ratio * (1 + h[2] / h[3])) * t2,
        -t2 * ratio * h[1] / h[2],
    )


def ipndm_v(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback, max_order: int = 4
) -> torch.Tensor:
    """iPNDM with weights for the actual, unequal step sizes."""
    sig = [float(s) for s in sigmas]
    ds: list[torch.Tensor] = []  # newest first
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        ds.insert(0, to_d(x, denoised, sigma))
        del ds[max_order:]
        if sig[i + 1] == 0:
            x = denoised
            continue
        steps = [sig[i + 1 - k] - sig[i - k] for k in range(len(ds))]
        x = x + (nxt - sigma) * sum(w * d for w, d in zip(_ipndm_v_weights(steps), ds, strict=True))
    return x


# DEIS maps sigma to the time of a VP-SDE fitted to EDM's range (sigma 0.002 at t = 1e-3, 80 at t = 1).
_EDM_SIGMA_MIN, _EDM_SIGMA_MAX, _EPS_T = 0.002, 80.0, 1e-3
_BETA_D = 2 * (math.log(_EDM_SIGMA_MIN**2 + 1) / _EPS_T - math.log(_EDM_SIGMA_MAX**2 + 1)) / (_EPS_T - 1)
_BETA_MIN = math.log(_EDM_SIGMA_MAX**2 + 1) - 0.5 * _BETA_D


def _vp_time(sigma: float) -> float:
    """The VP time whose sigma = sqrt(exp(beta_d t²/2 + beta_min t) - 1) is `sigma`."""
    return (math.sqrt(_BETA_MIN**2 + 2 * _BETA_D * math.log(sigma**2 + 1)) - _BETA_MIN) / _BETA_D


def _dsigma_dt(t: np.ndarray) -> np.ndarray:
    grow = np.exp(0.5 * _BETA_D * t**2 + _BETA_MIN * t)
    return (_BETA_D * t + _BETA_MIN) * grow / (2 * np.sqrt(grow - 1))


def deis(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback, max_order: int = 3
) -> torch.Tensor:
    """DEIS-tAB: interpolate the slopes by a polynomial in VP time and integrate d(sigma) exactly over the step."""
    ts = np.array([_vp_time(float(s)) for s in sigmas])
    ds: list[torch.Tensor] = []  # newest first
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        ds.insert(0, to_d(x, denoised, sigma))
        del ds[max_order:]
        if len(ds) == 1 or float(nxt) <= 0:
            x = x + (nxt - sigma) * ds[0]
            continue
        coeffs = lagrange_weights(ts[[i - k for k in range(len(ds))]], ts[i], ts[i + 1], _dsigma_dt)
        x = x + sum(float(c) * d for c, d in zip(coeffs, ds, strict=True))
    return x


def gradient_estimation(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    ge_gamma: float = 2.0,
    cfg_pp: bool = False,
) -> torch.Tensor:
    """Euler plus a momentum-like correction (ge_gamma - 1) * (d - d_prev): denoising seen as gradient descent on
    the distance to the data manifold. With cfg_pp the slope comes from the unguided estimate (CFG++)."""
    d_prev: torch.Tensor | None = None
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, batch_sigma(sigma, x))
        cb(i, x, denoised)
        d = to_d(x, unguided(model, denoised) if cfg_pp else denoised, sigma)
        if float(nxt) == 0:
            x = denoised
        else:
            x = denoised + d * nxt if cfg_pp else x + d * (nxt - sigma)
            if d_prev is not None:
                x = x + (ge_gamma - 1) * (d - d_prev) * (nxt - sigma)
        d_prev = d
    return x
