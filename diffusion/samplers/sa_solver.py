"""SA-Solver, the stochastic Adams solver (Xue et al., NeurIPS 2023, arXiv:2309.05019), in data prediction.

Each step is a predictor (Adams-Bashforth on the last `predictor_order` x0 estimates) and, from the second step
on, a corrector (Adams-Moulton on the last `corrector_order` estimates, the newest taken at the predicted point).
The weights integrate the Lagrange basis polynomials in lambda = -log(sigma) against the SDE's kernel
(1 + tau²) e^((1 + tau²)(lambda - lambda_t)) (eqs. 15 and 18); tau sets the stochasticity, nonzero only between
two sigmas (by default those at 20% and 80% of the model's schedule), so the start and the end run as an ODE.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from diffusion.samplers.common import Denoise, NoiseSource, StepCallback, batch_sigma, lagrange_weights


def default_options(schedule: Any) -> dict[str, Any]:
    """The stochastic interval from 20% to 80% of the way through the model's schedule (a DiscreteSchedule)."""
    return {"sde_sigmas": (schedule.percent_to_sigma(0.2), schedule.percent_to_sigma(0.8))}


def _weights(lambdas: np.ndarray, lam_s: float, lam_t: float, tau: float) -> np.ndarray:
    rate = 1 + tau**2
    return rate * lagrange_weights(lambdas, lam_s, lam_t, lambda lam: np.exp(rate * (lam - lam_t)))


def _simple_weights(lambdas: np.ndarray, lam_s: float, lam_t: float, tau: float, corrector: bool) -> np.ndarray:
    """The paper's simplified order-2 weights (appendix D), older estimate first."""
    rate = 1 + tau**2
    h = lam_t - lam_s
    total = -np.expm1(-h * rate)
    if corrector:
        newest = 0.5 * rate * h
        return np.array([total - newest, newest])
    older = 0.5 * rate * h**2 / (lambdas[-2] - lam_s)
    return np.array([older, total - older])


def sa_solver(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    sde_sigmas: tuple[float, float] = (float("inf"), 0.0),
    eta: float = 1.0,
    s_noise: float = 1.0,
    predictor_order: int = 3,
    corrector_order: int = 4,
    use_pece: bool = False,
    simple_order_2: bool = False,
) -> torch.Tensor:
    """`sde_sigmas` = (start, end): tau = eta for start >= sigma >= end, 0 elsewhere; with `use_pece` the
    corrected point is evaluated again (one more model call per step) and replaces the estimate."""
    if len(sigmas) < 2:
        return x
    sig = sigmas.double().cpu().numpy()
    lambdas = -np.log(np.maximum(sig, 1e-300))
    start, end = sde_sigmas

    def tau_at(sigma: float) -> float:
        return eta if eta > 0 and start >= sigma >= end else 0.0

    def weights(lams: np.ndarray, lam_s: float, lam_t: float, tau: float, corrector: bool) -> list[float]:
        if simple_order_2 and len(lams) == 2:
            return [float(w) for w in _simple_weights(lams, lam_s, lam_t, tau, corrector)]
        return [float(w) for w in _weights(lams, lam_s, lam_t, tau)]

    lower_at_end = sig[-1] == 0
    x_pred = x
    tau, h, step_noise = 0.0, 0.0, torch.zeros_like(x)
    history: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = model(x_pred, batch_sigma(sigmas[i], x))
        cb(i, x_pred, denoised)
        history = [*history, denoised][-max(predictor_order, corrector_order) :]
        p_order = min(predictor_order, len(history))
        c_order = 0 if i == 0 or (sig[i + 1] == 0 and not use_pece) else min(corrector_order, len(history))
        if lower_at_end:
            p_order = min(p_order, len(sig) - 2 - i)
            c_order = min(c_order, len(sig) - 1 - i)
        if c_order == 0:
            x = x_pred
        else:
            w = weights(lambdas[i - c_order + 1 : i + 1], lambdas[i - 1], lambdas[i], tau, True)
            x = (sigmas[i] / sigmas[i - 1]) * np.exp(-(tau**2) * h) * x
            x = x + sum(wj * d for wj, d in zip(w, history[-c_order:], strict=True))
            if tau > 0 and s_noise > 0:
                x = x + step_noise  # the predictor's noise belongs to this interval too
            if use_pece:
                denoised = model(x, batch_sigma(sigmas[i], x))
                history[-1] = denoised
        if sig[i + 1] == 0:
            x_pred = denoised
            continue
        tau = tau_at(sig[i + 1])
        w = weights(lambdas[i - p_order + 1 : i + 1], lambdas[i], lambdas[i + 1], tau, False)
        h = float(lambdas[i + 1] - lambdas[i])
        x_pred = (sigmas[i + 1] / sigmas[i]) * np.exp(-(tau**2) * h) * x
        x_pred = x_pred + sum(wj * d for wj, d in zip(w, history[-p_order:], strict=True))
        if tau > 0 and s_noise > 0:
            spread = float(np.sqrt(-np.expm1(-2 * tau**2 * h)))
            step_noise = noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * spread * s_noise
            x_pred = x_pred + step_noise
    return x_pred
