"""DPM-Solver (Lu et al. 2022, arXiv:2206.00927) in noise prediction: the fixed-step DPM-Solver-fast (orders
3, 3, ..., then 2 and 1 to spend exactly the budget of model calls) and the adaptive DPM-Solver-12/23 with a PID
step-size controller. Both run in t = -log(sigma) from the schedule's first sigma to its last nonzero one, so they
end with that sigma's noise left in (the schedule's other sigmas only set the budget and the range)."""

from __future__ import annotations

import math

import torch

from diffusion.samplers.common import Denoise, NoiseSource, StepCallback, ancestral_step, batch_sigma


class _Solver:
    """The model as eps(x, t), with a per-step cache so a stage reused by two solvers costs one call."""

    def __init__(self, model: Denoise) -> None:
        self.model, self.calls = model, 0

    @staticmethod
    def sigma(t: torch.Tensor) -> torch.Tensor:
        return t.neg().exp()

    @staticmethod
    def t(sigma: torch.Tensor) -> torch.Tensor:
        return -sigma.log()

    def eps(self, cache: dict[str, torch.Tensor], key: str, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if key not in cache:
            sigma = self.sigma(t)
            cache[key] = (x - self.model(x, batch_sigma(sigma, x))) / sigma
            self.calls += 1
        return cache[key]

    def step1(self, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, cache: dict) -> torch.Tensor:
        h = t_next - t
        return x - self.sigma(t_next) * h.expm1() * self.eps(cache, "eps", x, t)

    def step2(self, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, cache: dict, r1: float = 0.5):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        return x - self.sigma(t_next) * h.expm1() * eps - self.sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)

    def step3(self, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, cache: dict) -> torch.Tensor:
        r1, r2 = 1 / 3, 2 / 3
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1, s2 = t + r1 * h, t + r2 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        u2 = (
            x
            - self.sigma(s2) * (r2 * h).expm1() * eps
            - self.sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps)
        )
        eps_r2 = self.eps(cache, "eps_r2", u2, s2)
        return x - self.sigma(t_next) * h.expm1() * eps - self.sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)


def _range(sigmas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigma_max, sigma_min): the first sigma and the last nonzero one."""
    last = sigmas[-1] if float(sigmas[-1]) > 0 else sigmas[-2]
    return sigmas[0], last


def dpm_fast(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    eta: float = 0.0,
    s_noise: float = 1.0,
) -> torch.Tensor:
    """len(sigmas) - 1 model calls spread over floor(n/3) + 1 steps uniform in t (paper, Alg. 1 "fast")."""
    nfe = len(sigmas) - 1
    if nfe < 1:
        return x
    solver = _Solver(model)
    sigma_max, sigma_min = _range(sigmas)
    t_start, t_end = solver.t(sigma_max), solver.t(sigma_min)
    m = nfe // 3 + 1
    ts = torch.linspace(float(t_start), float(t_end), m + 1, dtype=sigmas.dtype, device=sigmas.device)
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    for i, order in enumerate(orders):
        cache: dict[str, torch.Tensor] = {}
        t, t_next = ts[i], ts[i + 1]
        su: torch.Tensor | float = 0.0
        t_target = t_next
        if eta:
            sd, _ = ancestral_step(solver.sigma(t), solver.sigma(t_next), eta)
            t_target = torch.minimum(t_end, solver.t(sd))
            su = (solver.sigma(t_next) ** 2 - solver.sigma(t_target) ** 2) ** 0.5
        calls_before = solver.calls
        eps = solver.eps(cache, "eps", x, t)
        cb(min(calls_before, nfe - 1), x, x - solver.sigma(t) * eps)
        step = {1: solver.step1, 2: solver.step2, 3: solver.step3}[order]
        x = step(x, t, t_target, cache)
        if eta:
            x = x + su * s_noise * noise(solver.sigma(t), solver.sigma(t_next))
    return x


def dpm_adaptive(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseSource,
    cb: StepCallback,
    order: int = 3,
    rtol: float = 0.05,
    atol: float = 0.0078,
    h_init: float = 0.05,
    pcoeff: float = 0.0,
    icoeff: float = 1.0,
    dcoeff: float = 0.0,
    accept_safety: float = 0.81,
    eta: float = 0.0,
    s_noise: float = 1.0,
) -> torch.Tensor:
    """Embedded pairs (DPM-Solver-1 in 2, or 2 in 3) estimate each step's error; a PID controller on the error
    grows or shrinks the step in t (paper, sec. 4 and Alg. 5). The number of model calls is not known ahead."""
    if order not in (2, 3):
        raise ValueError("dpm_adaptive: order must be 2 or 3")
    if len(sigmas) < 2:
        return x
    solver = _Solver(model)
    sigma_max, sigma_min = _range(sigmas)
    s, t_end = solver.t(sigma_max), solver.t(sigma_min)
    controller = _PID(h_init, pcoeff, icoeff, dcoeff, 1.5 if eta else order, accept_safety)
    x_prev = x
    steps = 0
    while float(s) < float(t_end) - 1e-5:
        cache: dict[str, torch.Tensor] = {}
        t = torch.minimum(t_end, s + controller.h)
        su: torch.Tensor | float = 0.0
        t_target = t
        if eta:
            sd, _ = ancestral_step(solver.sigma(s), solver.sigma(t), eta)
            t_target = torch.minimum(t_end, solver.t(sd))
            su = (solver.sigma(t) ** 2 - solver.sigma(t_target) ** 2) ** 0.5
        eps = solver.eps(cache, "eps", x, s)
        denoised = x - solver.sigma(s) * eps
        if order == 2:
            x_low = solver.step1(x, s, t_target, cache)
            x_high = solver.step2(x, s, t_target, cache)
        else:
            x_low = solver.step2(x, s, t_target, cache, r1=1 / 3)
            x_high = solver.step3(x, s, t_target, cache)
        scale = torch.clamp(rtol * torch.maximum(x_low.abs(), x_prev.abs()), min=atol)
        error = torch.linalg.norm((x_low - x_high) / scale) / x.numel() ** 0.5
        if controller.propose(float(error)):
            x_prev = x_low
            x = x_high
            if eta:
                x = x + su * s_noise * noise(solver.sigma(s), solver.sigma(t))
            s = t
        cb(steps, x, denoised)
        steps += 1
    return x


class _PID:
    """Step-size control from the last three inverse errors (Söderlind 2003; k-diffusion's defaults = I control)."""

    def __init__(self, h: float, p: float, i: float, d: float, order: float, accept_safety: float) -> None:
        self.h = h
        self.b1, self.b2, self.b3 = (p + i + d) / order, -(p + 2 * d) / order, d / order
        self.accept_safety = accept_safety
        self.errs: list[float] = []

    def propose(self, error: float) -> bool:
        inv = 1 / (error + 1e-8)
        if not self.errs:
            self.errs = [inv, inv, inv]
        self.errs[0] = inv
        factor = self.errs[0] ** self.b1 * self.errs[1] ** self.b2 * self.errs[2] ** self.b3
        factor = 1 + math.atan(factor - 1)  # limiter: no step grows or shrinks too fast
        accept = factor >= self.accept_safety
        if accept:
            self.errs[2], self.errs[1] = self.errs[1], self.errs[0]
        self.h *= factor
        return accept
