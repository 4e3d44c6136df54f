"""Every sampler on a denoiser with a known answer: data ~ N(MU, S²), whose exact x0 estimate is
MU + (x - MU) S² / (S² + sigma²). The probability-flow ODE then maps x_T to MU + (x_T - MU) sqrt(S² + sigma²) /
sqrt(S² + sigma_T²), and a stochastic sampler started on the exact marginal must end with samples ~ N(MU, S²)."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion.names import SAMPLER_NAMES
from diffusion.noise import BrownianTreeNoise, GaussianNoise
from diffusion.samplers import SAMPLERS, SamplerChoice
from diffusion.samplers.unipc import FINAL_SIGMA
from diffusion.schedulers import DiscreteSchedule, karras

MU, S = 0.7, 0.5
SCHEDULE = DiscreteSchedule.scaled_linear(0.00085, 0.012, 1000)
DETERMINISTIC = [*sorted(name for name, s in SAMPLERS.items() if s.noise == "none"), "dpm_fast", "dpm_adaptive"]
STOCHASTIC = sorted(name for name, s in SAMPLERS.items() if s.noise != "none" and name not in DETERMINISTIC)


def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return MU + (x - MU) * S**2 / (S**2 + sigma[:, None, None, None] ** 2)


class Guided:
    """The same data seen through classifier-free guidance: the unguided estimate is another Gaussian's."""

    def __init__(self) -> None:
        self.last_uncond: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.last_uncond = denoise(x, sigma) - 0.3
        return denoise(x, sigma)


# First order: one slope per step, or (Heun++, gradient estimation) slopes blended with heuristic weights.
FIRST_ORDER = {"euler", "euler_cfg_pp", "ddim", "heunpp2", "gradient_estimation", "gradient_estimation_cfg_pp"}


def _exact(x_t: torch.Tensor, sigma_t: float, sigma: float) -> torch.Tensor:
    return MU + (x_t - MU) * math.sqrt(S**2 + sigma**2) / math.sqrt(S**2 + sigma_t**2)


def _ode_run(name: str, steps: int) -> float:
    """Relative error against the exact answer: the ODE's solution where the sampler ends; for the step to 0,
    which every sampler takes as x <- x0 estimate (Euler's step to 0 is the same), the exact solution at the
    last nonzero sigma, denoised."""
    sigmas = karras(SCHEDULE, steps).double()
    if name.startswith("uni_pc"):  # a schedule ending at 0 ends at 0.001 (FINAL_SIGMA) in one big first-order step
        sigmas = sigmas[:-1]
    x_t = MU + torch.randn(1, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    end = float(sigmas[-2]) if name in ("dpm_fast", "dpm_adaptive") else float(sigmas[-1])
    if end == 0:
        last = sigmas[-2].reshape(1)
        exact = denoise(_exact(x_t, float(sigmas[0]), float(last)), last)
    else:
        exact = _exact(x_t, float(sigmas[0]), end)
    out = SAMPLERS[name](denoise, x_t.clone(), sigmas, lambda *_: torch.zeros_like(x_t), lambda *a: None)
    return float((out - exact).abs().max() / (exact - MU).abs().max())


def test_one_table_in_the_reference_order() -> None:
    assert tuple(SAMPLERS) == SAMPLER_NAMES and len(SAMPLER_NAMES) == 42
    assert sorted(DETERMINISTIC + STOCHASTIC) == sorted(SAMPLER_NAMES)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_samplers_converge_to_the_exact_ode_solution(name: str) -> None:
    coarse, fine = _ode_run(name, 10), _ode_run(name, 40)
    if name == "dpm_adaptive":  # its steps follow its error tolerance (rtol 0.05), not the schedule
        assert fine < 0.005 and coarse < 0.005
    elif name in FIRST_ORDER:
        assert fine < coarse / 2.2 and fine < 0.05
    else:  # second order or better: four times the steps, at least eight times closer
        assert fine < coarse / 8 and fine < 0.005


def test_unipc_ends_at_its_final_sigma_with_one_predictor_step() -> None:
    """With a final 0, UniPC's last step is its first-order predictor to sigma = 0.001 from the last x0 estimate."""
    sigmas = karras(SCHEDULE, 6).double()
    x_t = MU + torch.randn(1, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    out = SAMPLERS["uni_pc"](denoise, x_t, sigmas, None, lambda i, x, d: seen.append((x, d)))
    x_last, d_last = seen[-1]
    h = math.log(float(sigmas[-2]) / FINAL_SIGMA)
    assert len(seen) == 6
    assert torch.allclose(out, FINAL_SIGMA / sigmas[-2] * x_last - math.expm1(-h) * d_last, rtol=1e-12)


def _stochastic_run(name: str, seed: int, steps: int = 24) -> torch.Tensor:
    sigmas = karras(SCHEDULE, steps).double()
    gen = torch.Generator().manual_seed(1234)
    x = MU + torch.randn(1, 4, 32, 32, dtype=torch.float64, generator=gen) * math.sqrt(S**2 + float(sigmas[0]) ** 2)
    kind = SAMPLERS[name].noise
    noise = (
        BrownianTreeNoise.for_sigmas(x, sigmas, seed)
        if kind in ("tree", "device_tree")
        else GaussianNoise(x.shape, seed)
    )
    options = {"sde_sigmas": (10.0, 0.5)} if name.startswith("sa_solver") else {}
    if kind == "stream":
        return SAMPLERS[name](denoise, x, sigmas, _double(noise), lambda *a: None, **options)
    return SAMPLERS[name](denoise, x, sigmas, noise, lambda *a: None, **options)


def _double(noise: GaussianNoise):
    return lambda a, b: noise(a, b).double()


@pytest.mark.parametrize("name", [n for n in STOCHASTIC if n != "lcm"])
def test_stochastic_samplers_end_on_the_data_distribution(name: str) -> None:
    """Started on the exact marginal, an SDE/ancestral sampler ends on N(MU, S²), closer with more steps."""
    coarse, fine = _stochastic_run(name, 5, 12), _stochastic_run(name, 5, 48)
    assert float(fine.mean()) == pytest.approx(MU, abs=0.02)
    assert float(fine.std()) == pytest.approx(S, rel=0.1)
    assert abs(float(fine.std()) - S) < abs(float(coarse.std()) - S) + 0.01


def test_lcm_variance_follows_its_recursion() -> None:
    """LCM jumps to the x0 estimate and re-noises: with the exact (posterior-mean) denoiser the variance obeys
    V <- (S² / (S² + sigma²))² V + sigma_next², ending on the last estimate's variance (below S²: LCM expects a
    consistency model, whose estimate is a sample, not a mean)."""
    sigmas = karras(SCHEDULE, 48).double()
    variance = S**2 + float(sigmas[0]) ** 2
    for i in range(48):
        shrink = S**2 / (S**2 + float(sigmas[i]) ** 2)
        variance = shrink**2 * variance + float(sigmas[i + 1]) ** 2
    out = _stochastic_run("lcm", 5, 48)
    assert float(out.std()) == pytest.approx(math.sqrt(variance), rel=0.05)
    assert float(out.mean()) == pytest.approx(MU, abs=0.02)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_samplers_are_seed_deterministic(name: str) -> None:
    a, b, other = _stochastic_run(name, 5, 8), _stochastic_run(name, 5, 8), _stochastic_run(name, 6, 8)
    assert torch.equal(a, b)
    assert not torch.allclose(a, other)


@pytest.mark.parametrize("name", [n for n in SAMPLER_NAMES if n.endswith("_cfg_pp")])
def test_cfg_pp_steps_renoise_with_the_unguided_estimate(name: str) -> None:
    """Without guidance CFG++ is its base sampler; with it, the result moves (the uncond estimate is read)."""
    base = name.removesuffix("_cfg_pp")
    sigmas = karras(SCHEDULE, 12).double()
    x = MU + torch.randn(1, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 14.6
    runs = {}
    for label, model, sampler in (("plain", denoise, name), ("base", denoise, base), ("guided", Guided(), name)):
        noise = GaussianNoise(x.shape, 3)
        runs[label] = SAMPLERS[sampler](model, x.clone(), sigmas, _double(noise), lambda *a: None)
    assert torch.allclose(runs["plain"], runs["base"], atol=1e-9)
    assert not torch.allclose(runs["guided"], runs["plain"], atol=1e-3)


def test_sampler_options_override_the_table() -> None:
    sigmas = karras(SCHEDULE, 6).double()
    x = torch.ones(1, 1, 4, 4, dtype=torch.float64) * 10
    quiet = SAMPLERS["euler_ancestral"](denoise, x, sigmas, lambda *_: torch.ones_like(x), lambda *a: None, eta=0.0)
    euler = SAMPLERS["euler"](denoise, x, sigmas, lambda *_: torch.ones_like(x), lambda *a: None)
    assert torch.allclose(quiet, euler)
    assert SamplerChoice("lms", {"order": 2}).options == {"order": 2}


def test_bad_options_are_refused_by_name() -> None:
    sigmas = karras(SCHEDULE, 3).double()
    x = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="order must be 2 or 3"):
        SAMPLERS["dpm_adaptive"](denoise, x, sigmas, None, lambda *a: None, order=4)
    with pytest.raises(ValueError, match="solver_type"):
        SAMPLERS["dpmpp_2m_sde"](denoise, x, sigmas, None, lambda *a: None, solver_type="rk4")
    with pytest.raises(ValueError, match="solver_type"):
        SAMPLERS["er_sde"](denoise, x, sigmas, None, lambda *a: None, solver_type="nope")


def test_gpu_variants_draw_from_trees_on_the_models_device() -> None:
    """`_gpu` samplers keep their Brownian trees on the latent's device; on a CPU that is the same path as the CPU
    trees of their plain twins."""
    from diffusion.sampling import _step_noise

    x = torch.zeros(2, 4, 8, 8)
    sigmas = karras(SCHEDULE, 4)
    gpu = _step_noise(SAMPLERS["dpmpp_2m_sde_gpu"], x, sigmas, 7, None)
    cpu = _step_noise(SAMPLERS["dpmpp_2m_sde"], x, sigmas, 7, None)
    assert isinstance(gpu, BrownianTreeNoise) and isinstance(cpu, BrownianTreeNoise)
    assert torch.equal(gpu(sigmas[0], sigmas[1]), cpu(sigmas[0], sigmas[1]))
    stream = _step_noise(SAMPLERS["euler_ancestral"], x, sigmas, 7, None)
    assert isinstance(stream, GaussianNoise)
