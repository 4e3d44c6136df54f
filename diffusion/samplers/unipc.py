"""UniPC (Zhao et al., NeurIPS 2023, arXiv:2302.04867): a unified predictor (UniP) and corrector (UniC) of any
order, in data prediction and lambda = -log(sigma), one model call per step.

Step k goes from lambda_s to lambda_t (h = lambda_t - lambda_s) with the history of x0 estimates m_i at
lambda_i, r_i = (lambda_i - lambda_s) / h and D_i = (m_i - m_0) / r_i:
    x_t = (sigma_t / sigma_s) x_s - expm1(-h) m_0 - B(h) sum_i rho_i D_i,
the rho solving sum_i rho_i r_i^(p-1) = phi_(p+1)(-h) p! (-h) / B(h) for p = 1..order (eq. 8; the order-2 predictor
takes rho = 1/2). B(h) = -h is variant bh1, B(h) = expm1(-h) bh2. The corrector re-does the step with the model's
estimate at the predicted point appended (r = 1); that estimate is kept as the history's newest.

As published, the first steps warm up (order 1, 2, ...), the order is min(3, steps - 1) and falls again on the
last steps, the last step runs the predictor alone, and the schedule's final 0 is replaced by sigma = 0.001, so
the result keeps that last trace of noise.
"""

from __future__ import annotations

import torch

from diffusion.samplers.common import Denoise, NoiseSource, StepCallback, batch_sigma

FINAL_SIGMA = 0.001


def _rhs(hh: torch.Tensor, b_h: torch.Tensor, order: int) -> list[torch.Tensor]:
    """phi_(p+1)(hh) p! hh / B(h) for p = 1..order (hh = -h), by phi_(k+1)(z) = (phi_k(z) - 1/k!) / z."""
    out: list[torch.Tensor] = []
    h_phi_k = torch.expm1(hh) / hh - 1
    factorial = 1
    for p in range(1, order + 1):
        out.append(h_phi_k * factorial / b_h)
        factorial *= p + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    return out


def _solve(rks: list[torch.Tensor], rhs: list[torch.Tensor]) -> torch.Tensor:
    r = torch.stack([torch.stack(rks) ** p for p in range(len(rks))]).double()
    return torch.linalg.solve(r, torch.stack(rhs).double())


def uni_pc(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    variant: str = "bh1",
    max_order: int = 3,
) -> torch.Tensor:
    if variant not in ("bh1", "bh2"):
        raise ValueError("variant must be 'bh1' or 'bh2'")
    steps = len(sigmas) - 1
    if steps < 1:
        return x
    targets = sigmas.clone()
    if float(targets[-1]) == 0:
        targets[-1] = FINAL_SIGMA
    order = max(1, min(max_order, steps - 1))
    lambdas = [-targets[0].log()]
    outputs = [model(x, batch_sigma(targets[0], x))]
    cb(0, x, outputs[0])
    for k in range(1, steps + 1):
        step_order = min(order, k, steps + 1 - k)
        sigma_s, sigma_t = targets[k - 1], targets[k]
        lam_s, lam_t, m0 = lambdas[-1], -sigma_t.log(), outputs[-1]
        h = lam_t - lam_s
        hh = -h
        b_h = hh if variant == "bh1" else torch.expm1(hh)
        rks = [(lambdas[-(i + 1)] - lam_s) / h for i in range(1, step_order)]
        d1s = [(outputs[-(i + 1)] - m0) / rk for i, rk in zip(range(1, step_order), rks, strict=True)]
        rhs = _rhs(hh, b_h, step_order)
        base = (sigma_t / sigma_s) * x - torch.expm1(hh) * m0
        x_t = base
        if d1s:
            rhos_p = [0.5] if step_order == 2 else [float(v) for v in _solve(rks, rhs[:-1])]
            x_t = base - b_h * sum(rho * d for rho, d in zip(rhos_p, d1s, strict=True))
        if k == steps:  # the last step: predictor only, no model call at sigma = 0.001
            return x_t
        m_t = model(x_t, batch_sigma(sigma_t, x))
        rhos_c = [0.5] if step_order == 1 else [float(v) for v in _solve([*rks, torch.ones_like(h)], rhs)]
        correction = sum((rho * d for rho, d in zip(rhos_c[:-1], d1s, strict=True)), torch.zeros_like(x))
        x = base - b_h * (correction + rhos_c[-1] * (m_t - m0))
        lambdas = [*lambdas, lam_t][-order:]
        outputs = [*outputs, m_t][-order:]
        cb(k, x, m_t)
    return x


def uni_pc_bh2(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback
) -> torch.Tensor:
    return uni_pc(model, x, sigmas, noise, cb, variant="bh2")
