"""The schedules and samplers the reference's images differed on, re-derived and checked by hand: DDIM's uniform
timestep spacing, DPM-2 and UniPC's dropped penultimate sigma, and UniPC's bh1/bh2 predictor-corrector steps."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from diffusion.samplers import SAMPLERS
from diffusion.samplers.unipc import FINAL_SIGMA
from diffusion.sampling import schedule_sigmas
from diffusion.schedulers import DiscreteSchedule, karras, sigmas_for

SCHEDULE = DiscreteSchedule.scaled_linear(0.00085, 0.012, 1000)


@dataclass
class _Model:
    schedule: DiscreteSchedule


def _sd1_sigma(t: int) -> float:
    """SD 1.x's training sigma at timestep t, from the scaled-linear betas (0.00085 to 0.012 over 1000 steps)."""
    root_lo, root_hi = 0.00085**0.5, 0.012**0.5
    alphabar = math.prod(1 - (root_lo + (root_hi - root_lo) * i / 999) ** 2 for i in range(t + 1))
    return math.sqrt((1 - alphabar) / alphabar)


@pytest.mark.parametrize(
    ("steps", "picked"),
    [
        (1, [1]),
        (3, [667, 334, 1]),  # c = 333
        (6, [997, 831, 665, 499, 333, 167, 1]),  # c = 166 does not divide 1000: 7 timesteps
        (7, [995, 853, 711, 569, 427, 285, 143, 1]),  # c = 142: 8 timesteps
        (8, [876, 751, 626, 501, 376, 251, 126, 1]),  # c = 125
        (10, [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]),
    ],
)
def test_ddim_uniform_takes_every_c_th_training_timestep_from_1(steps: int, picked: list[int]) -> None:
    """DDIM (Song et al. 2021, "uniform" skip): tau_i = i * c + 1 with c = 1000 // steps, top down, then 0."""
    want = torch.tensor([*map(_sd1_sigma, picked), 0.0], dtype=torch.float32)
    torch.testing.assert_close(sigmas_for(SCHEDULE, "ddim_uniform", steps), want, rtol=1e-6, atol=0)


def test_ddim_uniform_with_more_steps_than_half_the_table_takes_every_timestep() -> None:
    """c = 1000 // 600 = 1: all 999 timesteps from 999 down to 1 (the reference runs 999 steps, not 600)."""
    sigmas = sigmas_for(SCHEDULE, "ddim_uniform", 600)
    assert torch.equal(sigmas, torch.cat([SCHEDULE.sigmas[1:].flip(0), torch.zeros(1)]))


def test_ddim_uniform_on_a_table_that_starts_at_zero_ends_on_its_own_zero() -> None:
    """A table whose second sigma is ~0: the spacing is planned for steps + 1 (100 // 5 = 20 for 4 steps) and the
    last pick, sigma[1] = 0, is the end; no 0 is appended."""
    table = torch.cat([torch.zeros(2), torch.linspace(0.1, 9.8, 98)])
    sigmas = sigmas_for(DiscreteSchedule(table), "ddim_uniform", 4)
    assert torch.equal(sigmas, table[[81, 61, 41, 21, 1]])
    assert float(sigmas[-1]) == 0.0


def test_ddim_uniform_keeps_every_picked_timestep_when_steps_do_not_divide_1000() -> None:
    """30 steps: c = 33 picks 1, 34, ..., 991 (31 timesteps); KSampler runs all of them, as the reference does."""
    sigmas = schedule_sigmas(_Model(SCHEDULE), "ddim_uniform", 30)  # type: ignore[arg-type]
    assert len(sigmas) == 32
    assert float(sigmas[0]) == float(SCHEDULE.sigmas[991])


def test_dpm_2_and_uni_pc_drop_the_penultimate_sigma() -> None:
    """For DPM-2 and UniPC, KSampler plans steps + 1 and drops the second-to-last sigma (its step is wasted:
    DPM-2's last step is Euler, UniPC's lands at 0.001), so `steps` steps run from the same top sigma."""
    planned = karras(SCHEDULE, 5).float()
    for name in ("dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"):
        got = schedule_sigmas(_Model(SCHEDULE), "karras", 4, discard_penultimate=SAMPLERS[name].discard_penultimate)  # type: ignore[arg-type]
        assert torch.equal(got, torch.cat([planned[:-2], planned[-1:]])), name
    assert len(schedule_sigmas(_Model(SCHEDULE), "karras", 4)) == 5  # type: ignore[arg-type]


def _linear(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A denoiser whose estimate depends on x and sigma, so every term of a step shows in the result."""
    return 0.3 * x / (1 + sigma[:, None, None, None]) + 0.1


def test_dpm_2_step_by_hand() -> None:
    """One DPM-2 step: Euler to the log-midpoint, then the whole step with the midpoint's slope."""
    sigmas = torch.tensor([4.0, 1.0, 0.0], dtype=torch.float64)
    x = torch.full((1, 1, 1, 1), 2.0, dtype=torch.float64)
    s0, s1 = 4.0, 1.0
    mid = math.sqrt(s0 * s1)
    d = (2.0 - (0.3 * 2.0 / (1 + s0) + 0.1)) / s0
    x_mid = 2.0 + d * (mid - s0)
    d_mid = (x_mid - (0.3 * x_mid / (1 + mid) + 0.1)) / mid
    x1 = 2.0 + d_mid * (s1 - s0)
    x2 = 0.3 * x1 / (1 + s1) + 0.1  # the last step is Euler to 0: the x0 estimate
    out = SAMPLERS["dpm_2"](_linear, x, sigmas, None, lambda *a: None)
    assert float(out) == float(torch.tensor(x2, dtype=torch.float64))


def test_unipc_two_steps_by_hand_for_both_variants() -> None:
    """Two steps: order min(3, steps - 1) = 1. Step 1 predicts with DPM-Solver-1, calls the model at the prediction
    and corrects with rho = 1/2 and B(h) (bh1: -h, bh2: expm1(-h)); step 2 is the predictor alone to 0.001."""
    sigmas = torch.tensor([4.0, 1.0, 0.0], dtype=torch.float64)
    x0 = torch.full((1, 1, 1, 1), 2.0, dtype=torch.float64)
    for variant in ("uni_pc", "uni_pc_bh2"):
        m0 = 0.3 * 2.0 / (1 + 4.0) + 0.1
        h = math.log(4.0 / 1.0)
        base = (1.0 / 4.0) * 2.0 - math.expm1(-h) * m0
        m1 = 0.3 * base / (1 + 1.0) + 0.1
        b_h = -h if variant == "uni_pc" else math.expm1(-h)
        x1 = base - b_h * 0.5 * (m1 - m0)
        h2 = math.log(1.0 / FINAL_SIGMA)
        want = (FINAL_SIGMA / 1.0) * x1 - math.expm1(-h2) * m1
        out = SAMPLERS[variant](_linear, x0.clone(), sigmas, None, lambda *a: None)
        assert math.isclose(float(out), want, rel_tol=1e-12), variant


def test_unipc_third_order_corrector_solves_the_order_conditions() -> None:
    """At order 3, UniC's rhos satisfy sum_i rho_i r_i^(p-1) = phi_(p+1)(-h) p! (-h) / B(h) for p = 1..3 (eq. 8),
    for both B(h); the right-hand side's first entry is phi_2 written out."""
    from diffusion.samplers.unipc import _rhs, _solve

    hh = torch.tensor(-0.7, dtype=torch.float64)
    rks = [torch.tensor(-0.8, dtype=torch.float64), torch.tensor(-1.9, dtype=torch.float64)]
    for b_h in (hh, torch.expm1(hh)):
        rhs = _rhs(hh, b_h, 3)
        rhos = _solve([*rks, torch.ones_like(hh)], rhs)
        for p in range(3):
            lhs = sum(float(rho) * float(r) ** p for rho, r in zip(rhos, [*rks, torch.ones_like(hh)], strict=True))
            assert math.isclose(lhs, float(rhs[p]), rel_tol=1e-10)
        # phi_2(z) = (e^z - 1 - z) / z², so the first condition reads (e^hh - 1 - hh) / hh / B(h)
        assert math.isclose(float(rhs[0]), float((torch.expm1(hh) - hh) / hh / b_h), rel_tol=1e-12)
