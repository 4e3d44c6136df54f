"""Samplers in the k-diffusion formulation: `denoise(x, sigma) -> x0 estimate` on a decreasing sigma list.

Written from the published update rules: Euler and Heun (Karras et al. 2022), DPM-Solver-2 and ancestral steps
(Karras et al.; Song et al.), linear multistep, DPM-Solver++(2M) and its SDE variants (Lu et al. 2022),
UniPC (Zhao et al. 2023), LCM (Luo et al. 2023). DDIM with eta=0 is Euler on this ODE, so it is run as such.
Stochastic samplers ask `noise(sigma, sigma_next)` for each step's unit noise; the caller picks the source.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from diffusion.noise import NoiseSource

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, torch.Tensor, torch.Tensor], None]


def _s(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return sigma * x.new_ones([x.shape[0]])


def _d(x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return (x - denoised) / sigma


def ancestral_step(
    sigma: torch.Tensor, sigma_next: torch.Tensor, eta: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a step to sigma_next into a deterministic part (down) and fresh noise (up): down² + up² = next²."""
    if float(sigma_next) == 0 or eta == 0:
        return sigma_next, sigma_next * 0
    up = torch.minimum(sigma_next, eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2) ** 0.5)
    return (sigma_next**2 - up**2) ** 0.5, up


def euler(model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        denoised = model(x, _s(sigmas[i], x))
        cb(i, x, denoised)
        x = x + _d(x, denoised, sigmas[i]) * (sigmas[i + 1] - sigmas[i])
    return x


def euler_ancestral(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback
) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        denoised = model(x, _s(sigmas[i], x))
        cb(i, x, denoised)
        down, up = ancestral_step(sigmas[i], sigmas[i + 1])
        x = x + _d(x, denoised, sigmas[i]) * (down - sigmas[i])
        if float(sigmas[i + 1]) > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * up
    return x


def heun(model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, _s(sigma, x))
        cb(i, x, denoised)
        d = _d(x, denoised, sigma)
        x_euler = x + d * (nxt - sigma)
        if float(nxt) == 0:
            x = x_euler
        else:
            d2 = _d(x_euler, model(x_euler, _s(nxt, x)), nxt)
            x = x + (d + d2) / 2 * (nxt - sigma)
    return x


def _dpm2(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback, ancestral: bool
) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        denoised = model(x, _s(sigma, x))
        cb(i, x, denoised)
        target, up = ancestral_step(sigma, sigmas[i + 1]) if ancestral else (sigmas[i + 1], None)
        d = _d(x, denoised, sigma)
        if float(target) == 0:
            x = x + d * (target - sigma)
        else:
            mid = (sigma.log() / 2 + target.log() / 2).exp()
            x_mid = x + d * (mid - sigma)
            d_mid = _d(x_mid, model(x_mid, _s(mid, x)), mid)
            x = x + d_mid * (target - sigma)
        if ancestral and float(sigmas[i + 1]) > 0:
            x = x + noise(sigma, sigmas[i + 1]) * up
    return x


def dpm_2(model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback) -> torch.Tensor:
    return _dpm2(model, x, sigmas, noise, cb, ancestral=False)


def dpm_2_ancestral(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback
) -> torch.Tensor:
    return _dpm2(model, x, sigmas, noise, cb, ancestral=True)


def lms_coefficient(sigmas: np.ndarray, order: int, i: int, j: int) -> float:
    """Integral over [sigma_i, sigma_i+1] of the j-th Lagrange basis polynomial on the last `order` sigmas.

    Gauss-Legendre with `order` nodes is exact for these polynomials (degree order-1)."""
    nodes, weights = np.polynomial.legendre.leggauss(max(order, 1))
    a, b = sigmas[i], sigmas[i + 1]
    tau = (b - a) / 2 * nodes + (a + b) / 2
    basis = np.ones_like(tau)
    for k in range(order):
        if k != j:
            basis *= (tau - sigmas[i - k]) / (sigmas[i - j] - sigmas[i - k])
    return float((b - a) / 2 * np.sum(weights * basis))


def lms(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback, order: int = 4
) -> torch.Tensor:
    sig = sigmas.double().cpu().numpy()
    ds: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, _s(sigmas[i], x))
        cb(i, x, denoised)
        ds.insert(0, _d(x, denoised, sigmas[i]))
        del ds[order:]
        cur = min(i + 1, order)
        x = x + sum(lms_coefficient(sig, cur, i, j) * ds[j] for j in range(cur))
    return x


def dpmpp_2m(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback
) -> torch.Tensor:
    """DPM-Solver++(2M): second order multistep in log-sigma, data prediction."""
    old: torch.Tensor | None = None
    h_last: torch.Tensor | None = None
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, _s(sigma, x))
        cb(i, x, denoised)
        if float(nxt) == 0:
            x = denoised
            continue
        h = sigma.log() - nxt.log()
        blend = denoised
        if old is not None and h_last is not None:
            r = h_last / h
            blend = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
        x = (nxt / sigma) * x - torch.expm1(-h) * blend
        old, h_last = denoised, h
    return x


def dpmpp_2m_sde(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback, eta: float = 1.0
) -> torch.Tensor:
    """DPM-Solver++(2M) SDE, midpoint variant."""
    old: torch.Tensor | None = None
    h_last: torch.Tensor | None = None
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, _s(sigma, x))
        cb(i, x, denoised)
        if float(nxt) == 0:
            x = denoised
            continue
        h = sigma.log() - nxt.log()
        eta_h = eta * h
        x = (nxt / sigma) * torch.exp(-eta_h) * x - torch.expm1(-h - eta_h) * denoised
        if old is not None and h_last is not None:
            r = h_last / h
            x = x - 0.5 * torch.expm1(-h - eta_h) * (1 / r) * (denoised - old)
        if eta:
            x = x + noise(sigma, nxt) * nxt * (-torch.expm1(-2 * eta_h)) ** 0.5
        old, h_last = denoised, h
    return x


def dpmpp_sde(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback, eta: float = 1.0
) -> torch.Tensor:
    """DPM-Solver++ SDE: a two-stage step through the log-sigma midpoint with ancestral noise at each stage."""
    r = 0.5
    for i in range(len(sigmas) - 1):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, _s(sigma, x))
        cb(i, x, denoised)
        if float(nxt) == 0:
            x = x + _d(x, denoised, sigma) * (nxt - sigma)
            continue
        t, t_next = -sigma.log(), -nxt.log()
        s = t + (t_next - t) * r
        sigma_s = (-s).exp()
        down, up = ancestral_step(sigma, sigma_s, eta)
        x2 = (down / sigma) * x - torch.expm1(-(down.log().neg() - t)) * denoised
        x2 = x2 + noise(sigma, sigma_s) * up
        denoised2 = model(x2, _s(sigma_s, x))
        down, up = ancestral_step(sigma, nxt, eta)
        fac = 1 / (2 * r)
        blend = (1 - fac) * denoised + fac * denoised2
        x = (down / sigma) * x - torch.expm1(-(down.log().neg() - t)) * blend
        x = x + noise(sigma, nxt) * up  # the whole step's increment: the second stage starts again from x
    return x


def ddim(model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) is exactly the Euler step of the probability-flow ODE in sigma form."""
    return euler(model, x, sigmas, noise, cb)


def lcm(model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback) -> torch.Tensor:
    """Latent consistency sampling: jump to the x0 estimate, then re-noise to the next level."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, _s(sigmas[i], x))
        cb(i, x, denoised)
        x = denoised
        if float(sigmas[i + 1]) > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1]
    return x


def uni_pc(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseSource, cb: StepCallback, order: int = 3
) -> torch.Tensor:
    """UniPC (B(h) = h variant) with data prediction: a multistep predictor (UniP) and corrector (UniC), one
    model call per step. With lambda = -log(sigma) and x = x0 + sigma * eps, the first-order step is
    x_t = (sigma_t / sigma_s) x_s - expm1(-h) x0_s; higher orders add B(h) * sum(rho_k * D_k) from the
    history of x0 estimates, the rho solving the order conditions of the paper (eq. 8)."""
    steps = len(sigmas) - 1
    lambdas: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    pending: _UniStep | None = None
    for i in range(steps):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        denoised = model(x, _s(sigma, x))
        cb(i, x, denoised)
        if pending is not None:
            x = pending.correct(denoised)
        lambdas.append(-sigma.log())
        outputs.append(denoised)
        del lambdas[:-order], outputs[:-order]
        if float(nxt) == 0:
            return denoised
        cur = min(len(outputs), order, steps - i)  # lower order on the final steps
        pending = _UniStep(x, lambdas[-cur:], outputs[-cur:], -nxt.log(), sigma, nxt)
        x = pending.predict()
    return x


class _UniStep:
    """One UniPC step from s to t with its history; predicts x_t, then corrects it once m_t is known."""

    def __init__(
        self,
        x: torch.Tensor,
        lambdas: list[torch.Tensor],
        outputs: list[torch.Tensor],
        lam_t: torch.Tensor,
        sigma_s: torch.Tensor,
        sigma_t: torch.Tensor,
    ) -> None:
        lam0, self.m0 = lambdas[-1], outputs[-1]
        h = lam_t - lam0
        self.hh = -h
        self.rks = [(lambdas[-k] - lam0) / h for k in range(2, len(outputs) + 1)]
        self.d1s = [(outputs[-k] - self.m0) / rk for k, rk in zip(range(2, len(outputs) + 1), self.rks, strict=True)]
        self.base = (sigma_t / sigma_s) * x - torch.expm1(self.hh) * self.m0
        self.b_h = self.hh

    def _rhos(self, rks: list[torch.Tensor]) -> torch.Tensor:
        n = len(rks)
        h_phi_k = torch.expm1(self.hh) / self.hh - 1
        rhs, factorial = [], 1
        for i in range(1, n + 1):
            rhs.append(h_phi_k * factorial / self.b_h)
            factorial *= i + 1
            h_phi_k = h_phi_k / self.hh - 1 / factorial
        if n == 1:
            return torch.tensor([0.5], dtype=torch.float64)
        r = torch.stack([torch.stack(rks).double() ** p for p in range(n)])
        return torch.linalg.solve(r, torch.stack(rhs).double())

    def predict(self) -> torch.Tensor:
        if not self.d1s:
            return self.base
        rhos = self._rhos(self.rks)
        return self.base - self.b_h * sum(float(rho) * d for rho, d in zip(rhos, self.d1s, strict=True))

    def correct(self, m_t: torch.Tensor) -> torch.Tensor:
        rhos = self._rhos([*self.rks, torch.ones_like(self.hh)])
        terms = sum((float(rho) * d for rho, d in zip(rhos[:-1], self.d1s, strict=True)), torch.zeros_like(m_t))
        return self.base - self.b_h * (terms + float(rhos[-1]) * (m_t - self.m0))


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler": euler,
    "euler_ancestral": euler_ancestral,
    "heun": heun,
    "dpm_2": dpm_2,
    "dpm_2_ancestral": dpm_2_ancestral,
    "lms": lms,
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_2m_sde": dpmpp_2m_sde,
    "dpmpp_sde": dpmpp_sde,
    "ddim": ddim,
    "uni_pc": uni_pc,
    "lcm": lcm,
}

# Samplers that call the model twice per step (progress counts steps, not calls).
TWO_CALLS = frozenset({"heun", "dpm_2", "dpm_2_ancestral", "dpmpp_sde"})
# SDE samplers draw their noise from a Brownian tree over sigma (diffusion.noise), the others from a seeded stream.
SDE = frozenset({"dpmpp_2m_sde", "dpmpp_sde"})
STOCHASTIC = frozenset({"euler_ancestral", "dpm_2_ancestral", "dpmpp_2m_sde", "dpmpp_sde", "lcm"})
