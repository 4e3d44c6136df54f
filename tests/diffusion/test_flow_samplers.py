"""Samplers on a flow-matching (rectified flow) model, against hand-computed steps and toys with known answers.

Gaussian data N(MU, C²) per element: the flow model's exact x0 estimate at x = (1 - s) x0 + s n is
MU + a C² / (a² C² + s²) (x - a MU) with a = 1 - s, and a correct sampler ends with the data's mean and spread.
Point-mass data (every x0 = MU, the estimate always MU): every step must keep x at the flow marginal
N((1 - s) MU, s²), which the sigma-form (VE) renoise applied to flow sigmas misses. The one-step checks write out
each sampler's rule for flow models from its formula, with the noise a known tensor per interval."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from diffusion.flow import flow_schedule
from diffusion.noise import BrownianTreeNoise, GaussianNoise, NoiseSource
from diffusion.samplers import SAMPLERS, Sampler
from diffusion.samplers.common import ancestral_step
from diffusion.samplers.scaling import VE, NoiseScaling, RectifiedFlow
from diffusion.sampling import sampler_scaling
from diffusion.schedulers import DiscreteSchedule, sigmas_for
from tests.diffusion.unet_trajectories import all_trajectories

MU, C = 0.5, 0.6
SHAPE = (1, 4, 64, 64)
SCHEDULE = flow_schedule("sd3", 3.0)
RF = RectifiedFlow(top=SCHEDULE.percent_to_sigma(1e-4))
FLOW_AWARE = sorted(name for name, s in SAMPLERS.items() if s.on_flow != "as_is")
NOISY_AS_IS = sorted(name for name, s in SAMPLERS.items() if s.on_flow == "as_is" and s.noise != "none")


def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    s = sigma.reshape(-1, 1, 1, 1)
    a = 1 - s
    return MU + a * C**2 / (a**2 * C**2 + s**2) * (x - a * MU)


def point_mass(x: torch.Tensor, _sigma: torch.Tensor) -> torch.Tensor:
    return torch.full_like(x, MU)


def _sigmas(steps: int) -> torch.Tensor:
    return sigmas_for(SCHEDULE, "simple", steps)


def _noise(sampler: Sampler, x: torch.Tensor, sigmas: torch.Tensor, seed: int) -> NoiseSource:
    if sampler.noise in ("tree", "device_tree"):
        return BrownianTreeNoise.for_sigmas(x, sigmas, seed, None)
    return GaussianNoise(x.shape, seed)


def _options(sampler: Sampler) -> dict[str, object]:
    return sampler.schedule_defaults(SCHEDULE) if sampler.schedule_defaults is not None else {}


def _sample(
    name: str, steps: int, seed: int = 3, scaling: NoiseScaling = RF, model: Callable = denoise, **options: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The output and the sigma it is at (the last one, or the last nonzero one for DPM-Solver fast/adaptive)."""
    sampler, sigmas = SAMPLERS[name], _sigmas(steps)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))  # pure noise: flow sigma 1
    noise = _noise(sampler, x, sigmas, seed)
    out = sampler(model, x, sigmas, noise, lambda *_: None, scaling=scaling, **(_options(sampler) | options))
    end = sigmas[sigmas > 0][-1] if sampler.stops_above_zero else sigmas[-1]
    return out, end


def _error(out: torch.Tensor, end: torch.Tensor) -> tuple[float, float]:
    """How far the output's mean and spread are from the flow marginal at `end`."""
    a, s = 1 - float(end), float(end)
    return abs(float(out.mean()) - a * MU), abs(float(out.std()) - (a**2 * C**2 + s**2) ** 0.5)


# --- the rules, by hand --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sigma", "nxt", "eta"), [(0.8, 0.6, 1.0), (0.8, 0.6, 0.5), (1.0, 0.9, 1.0), (0.3, 0.0, 1.0)])
def test_the_rectified_flow_ancestral_step_by_hand(sigma: float, nxt: float, eta: float) -> None:
    """down = next (1 + (next / sigma - 1) eta); x is scaled by alpha_next / alpha_down and gets noise of
    sqrt(next² - down² alpha_next² / alpha_down²), so signal and noise land on (1 - next) x0 + next n."""
    step = RF.ancestral_step(torch.tensor(sigma), torch.tensor(nxt), eta)
    down = nxt * (1 + (nxt / sigma - 1) * eta)
    scale = (1 - nxt) / (1 - down)
    assert float(step.down) == pytest.approx(down, rel=1e-6)
    assert float(step.scale) == pytest.approx(scale, rel=1e-6)
    assert float(step.up) == pytest.approx(math.sqrt(nxt**2 - down**2 * scale**2), abs=1e-6)
    assert float(step.scale) * (1 - float(step.down)) == pytest.approx(1 - nxt, rel=1e-6)  # the signal
    assert float(step.scale * step.down) ** 2 + float(step.up) ** 2 == pytest.approx(nxt**2, abs=1e-6)  # the noise


def test_eta_1_steps_down_to_next_squared_over_sigma_unlike_the_ve_split() -> None:
    rf = RF.ancestral_step(torch.tensor(0.8), torch.tensor(0.6), 1.0)
    ve = VE.ancestral_step(torch.tensor(0.8), torch.tensor(0.6), 1.0)
    assert float(rf.down) == pytest.approx(0.45) and float(ve.down) == pytest.approx(0.6**2 / 0.8)
    assert float(ve.scale) == 1.0 and float(rf.scale) == pytest.approx(0.4 / 0.55)
    assert float(rf.up) != pytest.approx(float(ve.up), rel=1e-3)


def test_the_ddim_split_from_an_infinite_level_is_all_fresh_noise() -> None:
    """A flow model's sigma 1 is level sigma / alpha = inf: the split's formula is undefined (inf / inf), and the
    step renoises all of sigma_next whatever eta, as the reference's does."""
    down, up = ancestral_step(torch.tensor(math.inf), torch.tensor(1.5), 0.5)
    assert float(down) == 0.0 and float(up) == 1.5
    down, up = ancestral_step(torch.tensor(3.0), torch.tensor(1.5), 0.5)
    assert float(up) == pytest.approx(0.5 * math.sqrt(1.5**2 * (9 - 1.5**2) / 9))


def test_half_log_snr_and_renoise_of_a_flow_model() -> None:
    s = torch.tensor([0.2, 0.5, 0.9])
    torch.testing.assert_close(RF.half_log_snr(s), torch.log((1 - s) / s))
    torch.testing.assert_close(RF.sigma_at_level(RF.level(s)), s)
    torch.testing.assert_close(RF.level(s), torch.exp(-RF.half_log_snr(s)))
    x0, n = torch.tensor(2.0), torch.tensor(-1.0)
    assert float(RF.renoise(x0, n, torch.tensor(0.25))) == pytest.approx(0.75 * 2 - 0.25)
    assert float(VE.renoise(x0, n, torch.tensor(0.25))) == pytest.approx(2 - 0.25)


def test_half_log_snr_samplers_start_from_the_models_sigma_a_hair_below_1() -> None:
    """SD3 at shift 3: 0.01% into sampling is the shifted time 0.9999, 3 t / (1 + 2 t)."""
    assert RF.top == pytest.approx(3 * 0.9999 / (1 + 2 * 0.9999), rel=1e-12)
    sigmas = torch.tensor([1.0, 0.5, 0.0])
    assert RF.snr_sigmas(sigmas).tolist() == pytest.approx([RF.top, 0.5, 0.0])
    assert torch.equal(VE.snr_sigmas(sigmas), sigmas) and sigmas[0] == 1.0


def test_the_runner_hands_each_model_its_noise_scaling() -> None:
    """Flow models get the rectified-flow rules, starting half-log-SNR runs at their own schedule's sigma 0.01% in;
    U-Net models the sigma form."""

    class Flow:
        prediction, schedule = "flow", flow_schedule("flux", 1.15)

    class UNet:
        prediction, schedule = "eps", DiscreteSchedule.scaled_linear(0.00085, 0.012, 1000)

    scaling = sampler_scaling(Flow())  # type: ignore[arg-type]
    assert isinstance(scaling, RectifiedFlow) and scaling.top == Flow.schedule.percent_to_sigma(1e-4)
    assert sampler_scaling(UNet()) is VE  # type: ignore[arg-type]


def test_flow_schedules_place_percentages_on_the_continuous_shift() -> None:
    assert SCHEDULE.percent_to_sigma(0.2) == pytest.approx(3 * 0.8 / (1 + 2 * 0.8), rel=1e-12)
    assert SCHEDULE.percent_to_sigma(0.0) == 1.0 and SCHEDULE.percent_to_sigma(1.0) == 0.0
    flux = flow_schedule("flux", 1.15)
    assert flux.percent_to_sigma(0.3) == pytest.approx(math.exp(1.15) / (math.exp(1.15) + 1 / 0.7 - 1), rel=1e-12)
    assert flux.sigma_to_percent(flux.percent_to_sigma(0.3)) == pytest.approx(0.3, abs=1e-12)
    assert SCHEDULE.sigma_to_percent(SCHEDULE.percent_to_sigma(0.7)) == pytest.approx(0.7, abs=1e-12)


# --- one step of each sampler, by hand -----------------------------------------------------------------------------

X = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(1))


class KnownNoise:
    """A fixed unit-variance tensor per (sigma, sigma_next) interval, remembered so a hand formula can use it."""

    def __init__(self) -> None:
        self.drawn: dict[tuple[float, float], torch.Tensor] = {}

    def __call__(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        key = (round(float(sigma), 6), round(float(sigma_next), 6))
        if key not in self.drawn:
            self.drawn[key] = torch.randn(X.shape, generator=torch.Generator().manual_seed(len(self.drawn) + 7))
        return self.drawn[key]

    def at(self, sigma: float, sigma_next: float) -> torch.Tensor:
        return self.drawn[(round(sigma, 6), round(sigma_next, 6))]


class GuidedGaussian:
    """CFG 2 over the Gaussian toy and a negative of mean -MU, keeping the unguided estimate (for CFG++)."""

    last_uncond: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        cond = denoise(x, sigma)
        s = sigma.reshape(-1, 1, 1, 1)
        a = 1 - s
        self.last_uncond = -MU + a * C**2 / (a**2 * C**2 + s**2) * (x + a * MU)
        return self.last_uncond + 2 * (cond - self.last_uncond)

    def uncond(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        self(x, torch.tensor([sigma]))
        assert self.last_uncond is not None
        return self.last_uncond


def _step(
    name: str, sigma: float, nxt: float, model: Callable = denoise, **options: object
) -> tuple[torch.Tensor, KnownNoise]:
    noise = KnownNoise()
    sigmas = torch.tensor([sigma, nxt])
    return SAMPLERS[name](model, X, sigmas, noise, lambda *_: None, scaling=RF, **options), noise


def _d(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return denoise(x, torch.tensor([sigma]))


def _lam(sigma: float) -> float:
    return math.log((1 - sigma) / sigma)


def _sig(lam: float) -> float:
    return 1 / (1 + math.exp(lam))


def _rf(sigma: float, nxt: float, eta: float = 1.0) -> tuple[float, float, float]:
    down = nxt * (1 + (nxt / sigma - 1) * eta)
    scale = (1 - nxt) / (1 - down)
    return down, math.sqrt(nxt**2 - (down * scale) ** 2), scale


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_euler_ancestral_one_step(eta: float) -> None:
    got, noise = _step("euler_ancestral", 0.8, 0.6, eta=eta)
    down, up, scale = _rf(0.8, 0.6, eta)
    ratio = down / 0.8
    _close(got, scale * (ratio * X + (1 - ratio) * _d(X, 0.8)) + up * noise.at(0.8, 0.6))


def test_dpm_2_ancestral_one_step() -> None:
    got, noise = _step("dpm_2_ancestral", 0.8, 0.6)
    down, up, scale = _rf(0.8, 0.6)
    mid = math.sqrt(0.8 * down)  # the midpoint in log sigma
    x_mid = X + (X - _d(X, 0.8)) / 0.8 * (mid - 0.8)
    x = X + (x_mid - _d(x_mid, mid)) / mid * (down - 0.8)
    _close(got, scale * x + up * noise.at(0.8, 0.6))


@pytest.mark.parametrize("sigma", [0.8, 1.0])
def test_dpmpp_2s_ancestral_one_step(sigma: float) -> None:
    """Both stages are exact flow DDIM steps, (s_t / s) x + (1 - s_t / s) D; the second stage sits halfway in
    lambda = log((1 - s) / s), or at 0.9999 from pure noise."""
    got, noise = _step("dpmpp_2s_ancestral", sigma, 0.6)
    down, up, scale = _rf(sigma, 0.6)
    mid = 0.9999 if sigma == 1.0 else _sig((_lam(sigma) + _lam(down)) / 2)
    x_mid = mid / sigma * X + (1 - mid / sigma) * _d(X, sigma)
    x = down / sigma * X + (1 - down / sigma) * _d(x_mid, mid)
    _close(got, scale * x + up * noise.at(sigma, 0.6))


def test_dpmpp_2s_ancestral_cfg_pp_one_step() -> None:
    """On the unguided estimates, with the guidance added scaled by alpha_next."""
    model = GuidedGaussian()
    got, noise = _step("dpmpp_2s_ancestral_cfg_pp", 0.8, 0.6, model=model)
    down, up, scale = _rf(0.8, 0.6)
    toy = GuidedGaussian()
    guidance = toy(X, torch.tensor([0.8])) - toy.uncond(X, 0.8)
    mid = _sig((_lam(0.8) + _lam(down)) / 2)
    x_mid = mid / 0.8 * X + (1 - mid / 0.8) * toy.uncond(X, 0.8)
    x = down / 0.8 * X + (1 - down / 0.8) * toy.uncond(x_mid, mid)
    _close(got, scale * x + up * noise.at(0.8, 0.6) + 0.4 * guidance)


def _ddim_split(level: float, level_next: float, eta: float) -> tuple[float, float]:
    if math.isinf(level):
        return 0.0, level_next  # from pure noise the whole step is fresh noise
    up = min(level_next, eta * math.sqrt(level_next**2 * (level**2 - level_next**2) / level**2))
    return math.sqrt(level_next**2 - up**2), up


@pytest.mark.parametrize(("sigma", "eta"), [(0.8, 1.0), (0.8, 0.5), (1.0, 0.5)])
def test_euler_ancestral_cfg_pp_one_step(sigma: float, eta: float) -> None:
    """The DDIM split between the levels s / alpha, scaled back by alpha_next: x = alpha_t D + alpha_t down d +
    alpha_t up n with d = (x - alpha_s D_uncond) / s."""
    got, noise = _step("euler_ancestral_cfg_pp", sigma, 0.6, model=GuidedGaussian(), eta=eta)
    toy = GuidedGaussian()
    guided, uncond = toy(X, torch.tensor([sigma])), toy.uncond(X, sigma)
    level = math.inf if sigma == 1 else sigma / (1 - sigma)
    down, up = _ddim_split(level, 0.6 / 0.4, eta)
    d = (X - (1 - sigma) * uncond) / sigma
    _close(got, 0.4 * guided + 0.4 * down * d + 0.4 * up * noise.at(sigma, 0.6))


def test_euler_cfg_pp_one_step() -> None:
    got, _ = _step("euler_cfg_pp", 0.8, 0.6, model=GuidedGaussian())
    toy = GuidedGaussian()
    guided, uncond = toy(X, torch.tensor([0.8])), toy.uncond(X, 0.8)
    _close(got, 0.4 * guided + 0.6 * (X - 0.2 * uncond) / 0.8)


def test_lcm_one_step() -> None:
    got, noise = _step("lcm", 0.8, 0.6)
    _close(got, 0.4 * _d(X, 0.8) + 0.6 * noise.at(0.8, 0.6))


@pytest.mark.parametrize("name", ["dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde"])
def test_multistep_sde_first_step(name: str) -> None:
    """x = (s_t / s) e^(-h eta) x + alpha_t (1 - e^(-h (1 + eta))) D + s_t sqrt(1 - e^(-2 h eta)) n, h in the flow's
    half log-SNR."""
    got, noise = _step(name, 0.8, 0.6, eta=0.7)
    h = _lam(0.6) - _lam(0.8)
    want = 0.6 / 0.8 * math.exp(-h * 0.7) * X + 0.4 * -math.expm1(-h * 1.7) * _d(X, 0.8)
    _close(got, want + 0.6 * math.sqrt(-math.expm1(-2 * h * 0.7)) * noise.at(0.8, 0.6))


def test_sde_samplers_from_pure_noise_start_at_the_offset_sigma() -> None:
    """From sigma 1 the model is called at `top`, and the step is taken from there (finite lambda)."""
    seen: list[float] = []

    def recording(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        seen.append(float(sigma[0]))
        return denoise(x, sigma)

    got, noise = _step("dpmpp_2m_sde", 1.0, 0.6, model=recording)
    top = RF.top
    assert seen == pytest.approx([top], rel=1e-6)
    h = _lam(0.6) - _lam(top)
    want = 0.6 / top * math.exp(-h) * X + 0.4 * -math.expm1(-2 * h) * _d(X, top)
    _close(got, want + 0.6 * math.sqrt(-math.expm1(-2 * h)) * noise.at(top, 0.6))


def test_dpmpp_sde_one_step() -> None:
    """Two ancestral DPM-Solver++ stages in half log-SNR: each splits its step between the levels e^-lambda and
    scales x0 terms by alpha and noise by alpha times the level."""
    got, noise = _step("dpmpp_sde", 0.8, 0.6)
    lam_s, lam_t = _lam(0.8), _lam(0.6)
    lam_r = lam_s + (lam_t - lam_s) / 2
    s_r = _sig(lam_r)
    a_s, a_r, a_t = 0.2, 1 - s_r, 0.4
    down, up = _ddim_split(math.exp(-lam_s), math.exp(-lam_r), 1.0)
    h = -math.log(down) - lam_s
    x_r = a_r / a_s * math.exp(-h) * X - a_r * math.expm1(-h) * _d(X, 0.8) + a_r * up * noise.at(0.8, s_r)
    blend = _d(x_r, s_r)  # r = 1/2: the second estimate alone
    down, up = _ddim_split(math.exp(-lam_s), math.exp(-lam_t), 1.0)
    h = -math.log(down) - lam_s
    want = a_t / a_s * math.exp(-h) * X - a_t * math.expm1(-h) * blend + a_t * up * noise.at(0.8, 0.6)
    _close(got, want)


def test_er_sde_first_step() -> None:
    """Stage 1 of ER-SDE with the paper's lambda = sigma / alpha: x = (alpha_t / alpha_s) r x + alpha_t (1 - r) D
    + alpha_t sqrt(l_t² - l_s² r²) n, r the ratio of the noise scale function."""
    got, noise = _step("er_sde", 0.8, 0.6)
    l_s, l_t = 0.8 / 0.2, 0.6 / 0.4

    def scaler(v: float) -> float:
        return v * (math.exp(v**0.3) + 10)

    r = scaler(l_t) / scaler(l_s)
    want = 0.4 / 0.2 * r * X + 0.4 * (1 - r) * _d(X, 0.8)
    _close(got, want + 0.4 * math.sqrt(l_t**2 - l_s**2 * r**2) * noise.at(0.8, 0.6))


def test_seeds_2_one_step() -> None:
    got, noise = _step("seeds_2", 0.8, 0.6)
    lam_s, lam_t = _lam(0.8), _lam(0.6)
    h = lam_t - lam_s
    s_1 = _sig(lam_s + h / 2)
    path = math.sqrt(-math.expm1(-h)) * noise.at(0.8, s_1)
    x_1 = s_1 / 0.8 * math.exp(-h / 2) * X - (1 - s_1) * math.expm1(-h) * _d(X, 0.8) + path * s_1
    x = 0.6 / 0.8 * math.exp(-h) * X - 0.4 * math.expm1(-2 * h) * _d(x_1, s_1)
    path = path * math.exp(-h / 2) + math.sqrt(-math.expm1(-h)) * noise.at(s_1, 0.6)
    _close(got, x + path * 0.6)


def test_seeds_3_one_step() -> None:
    """Stages at a third and two thirds of the step in half log-SNR, x0 terms scaled by each stage's alpha, one
    noise path through the three segments."""
    got, noise = _step("seeds_3", 0.8, 0.6)
    lam_s, h = _lam(0.8), _lam(0.6) - _lam(0.8)
    s_1, s_2 = _sig(lam_s + h / 3), _sig(lam_s + 2 * h / 3)

    def phi_2(z: float) -> float:
        return (math.expm1(z) - z) / z

    path = math.sqrt(-math.expm1(-2 * h / 3)) * noise.at(0.8, s_1)
    x_1 = s_1 / 0.8 * math.exp(-h / 3) * X - (1 - s_1) * math.expm1(-2 * h / 3) * _d(X, 0.8) + path * s_1
    a2 = 2 * phi_2(-4 * h / 3)
    a1 = math.expm1(-4 * h / 3) - a2
    x_2 = s_2 / 0.8 * math.exp(-2 * h / 3) * X - (1 - s_2) * (a1 * _d(X, 0.8) + a2 * _d(x_1, s_1))
    path = path * math.exp(-h / 3) + math.sqrt(-math.expm1(-2 * h / 3)) * noise.at(s_1, s_2)
    x_2 = x_2 + path * s_2
    b3 = phi_2(-2 * h) * 3 / 2
    b1 = math.expm1(-2 * h) - b3
    x = 0.6 / 0.8 * math.exp(-h) * X - 0.4 * (b1 * _d(X, 0.8) + b3 * _d(x_2, s_2))
    path = path * math.exp(-h / 3) + math.sqrt(-math.expm1(-2 * h / 3)) * noise.at(s_2, 0.6)
    _close(got, x + path * 0.6)


def test_sa_solver_first_step() -> None:
    """The first predictor (order 1, no corrector yet) inside the stochastic interval (tau = 1): x =
    (s_t / s) e^(-h) x + alpha_t (1 - e^(-2h)) D + s_t sqrt(1 - e^(-2h)) n."""
    got, noise = _step("sa_solver", 0.8, 0.6, sde_sigmas=(0.9, 0.1))
    h = _lam(0.6) - _lam(0.8)
    want = 0.6 / 0.8 * math.exp(-h) * X + 0.4 * -math.expm1(-2 * h) * _d(X, 0.8)
    _close(got, want + 0.6 * math.sqrt(-math.expm1(-2 * h)) * noise.at(0.8, 0.6))


# --- whole runs ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FLOW_AWARE)
def test_every_step_keeps_point_mass_data_on_the_flow_marginal(name: str) -> None:
    """With x0 = MU known exactly, the latent handed to every step is (1 - s) MU + s n: mean (1 - s) MU, spread s."""
    sampler, sigmas = SAMPLERS[name], _sigmas(12)
    seen: list[tuple[int, float, float]] = []

    def record(i: int, x: torch.Tensor, _denoised: torch.Tensor) -> None:
        seen.append((i, float(x.mean()), float(x.std())))

    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    sampler(point_mass, x, sigmas, _noise(sampler, x, sigmas, 4), record, scaling=RF, **_options(sampler))
    assert len(seen) == len(sigmas) - 1
    for i, mean, spread in seen:
        s = float(sigmas[i]) if i > 0 or sampler.on_flow != "snr" else RF.top
        assert mean == pytest.approx((1 - s) * MU, abs=4 * s / x.numel() ** 0.5 + 1e-4), i  # 4 standard errors
        assert spread == pytest.approx(s, rel=0.03, abs=1e-4), i


def test_the_ve_renoise_on_flow_sigmas_leaves_the_flow_marginal() -> None:
    """What the test above guards against: euler_ancestral's sigma-form step on flow sigmas as they are."""
    seen: list[float] = []
    sigmas = _sigmas(12)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    SAMPLERS["euler_ancestral"](
        point_mass, x, sigmas, GaussianNoise(SHAPE, 4), lambda i, x, _d: seen.append(float(x.mean()))
    )
    assert abs(seen[6] - (1 - float(sigmas[6])) * MU) > 0.05


@pytest.mark.parametrize("name", [n for n in FLOW_AWARE if SAMPLERS[n].noise != "none"])
def test_noisy_samplers_reach_the_data_distribution_and_converge_with_steps(name: str) -> None:
    mean_error, spread_error = _error(*_sample(name, 100))
    assert mean_error < 0.02
    if name != "lcm":  # consistency sampling on a plain denoiser shrinks the spread by design
        coarse_spread = _error(*_sample(name, 10))[1]
        assert spread_error < 0.05 and spread_error < coarse_spread


@pytest.mark.parametrize("name", NOISY_AS_IS)
def test_samplers_the_reference_runs_on_flow_sigmas_as_they_are_do_so(name: str) -> None:
    """ddpm, res_multistep's ancestral forms and DPM-Solver fast/adaptive have no flow rule in the reference."""
    options = {"eta": 1.0} if name in ("dpm_fast", "dpm_adaptive") else {}
    assert torch.equal(_sample(name, 8, **options)[0], _sample(name, 8, scaling=VE, **options)[0])


@pytest.mark.parametrize("name", ["euler_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde", "er_sde"])
def test_a_seed_gives_the_same_sample_and_another_seed_another(name: str) -> None:
    first, _ = _sample(name, 8, seed=11)
    again, _ = _sample(name, 8, seed=11)
    other, _ = _sample(name, 8, seed=12)
    assert torch.equal(first, again) and not torch.allclose(first, other)


def test_the_denoiser_and_callback_see_the_flow_sigmas_and_latents() -> None:
    seen: list[tuple[float, float]] = []

    def recording(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        seen.append((float(sigma[0]), float(x.std())))
        return denoise(x, sigma)

    sigmas = _sigmas(6)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    reported: list[float] = []

    def report(_i: int, x_now: torch.Tensor, _denoised: torch.Tensor) -> None:
        reported.append(float(x_now.std()))

    noise = BrownianTreeNoise.for_sigmas(x, sigmas, 1)
    SAMPLERS["dpmpp_2m_sde"](recording, x, sigmas, noise, report, scaling=RF)
    assert [s for s, _ in seen] == pytest.approx([RF.top, *sigmas[1:-1].tolist()], abs=1e-6)
    assert seen[0][1] == pytest.approx(float(x.std()), rel=1e-4)
    assert all(spread < 1.2 for _, spread in seen)  # flow latents, never the VE ones (x / (1 - sigma))
    assert reported == pytest.approx([spread for _, spread in seen], rel=1e-5)  # the callback sees them too


def test_the_unet_paths_match_their_recorded_trajectories() -> None:
    """Sums recorded before per-model noise scaling (tests/diffusion/unet_trajectories.py), to float32 rounding."""
    recorded = json.loads((Path(__file__).parent / "data" / "unet_trajectories.json").read_text())
    now = all_trajectories()
    assert now.keys() == recorded.keys()
    for key, sums in recorded.items():
        assert now[key] == pytest.approx(sums, rel=1e-5, abs=1e-6), key
