"""Ancestral and SDE samplers on a flow-matching model, against a toy with a known answer.

The data are Gaussian N(MU, C²) per element, so the flow model's exact x0 estimate at x = (1 - s) x0 + s n is
MU + a C² / (a² C² + s²) (x - a MU) with a = 1 - s, and a correct sampler ends with the data's mean and spread.
The samplers' VE formulas used on flow sigmas as they are add noise without shrinking the signal and miss both."""

from __future__ import annotations

import pytest
import torch

from diffusion.flow import flow_schedule
from diffusion.noise import BrownianTreeNoise, GaussianNoise, NoiseSource
from diffusion.samplers import SAMPLERS, Sampler
from diffusion.schedulers import sigmas_for

MU, C = 0.5, 0.6
SHAPE = (1, 4, 64, 64)
NOISY = sorted(name for name, s in SAMPLERS.items() if s.adds_noise({}))
QUIET_BY_DEFAULT = sorted(name for name, s in SAMPLERS.items() if s.noise != "none" and not s.adds_noise({}))


def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    s = sigma.reshape(-1, 1, 1, 1)
    a = 1 - s
    return MU + a * C**2 / (a**2 * C**2 + s**2) * (x - a * MU)


def _sigmas(steps: int) -> torch.Tensor:
    return sigmas_for(flow_schedule("sd3", 3.0), "simple", steps)


def _noise(sampler: Sampler, x: torch.Tensor, sigmas: torch.Tensor, seed: int) -> NoiseSource:
    if sampler.noise in ("tree", "device_tree"):
        return BrownianTreeNoise.for_sigmas(x, sigmas, seed, None)
    return GaussianNoise(x.shape, seed)


def _sample(
    name: str, steps: int, seed: int = 3, flow_model: bool = True, **options: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The output and the sigma it is at (the last one, or the last nonzero one for DPM-Solver fast/adaptive)."""
    sampler, sigmas = SAMPLERS[name], _sigmas(steps)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))  # pure noise: flow sigma 1
    noise = _noise(sampler, x, sigmas, seed)
    out = sampler(denoise, x, sigmas, noise, lambda *_: None, flow_model=flow_model, **options)
    end = sigmas[sigmas > 0][-1] if sampler.stops_above_zero else sigmas[-1]
    return out, end


def _error(out: torch.Tensor, end: torch.Tensor) -> tuple[float, float]:
    """How far the output's mean and spread are from the flow marginal at `end`."""
    a, s = 1 - float(end), float(end)
    return abs(float(out.mean()) - a * MU), abs(float(out.std()) - (a**2 * C**2 + s**2) ** 0.5)


@pytest.mark.parametrize("name", NOISY)
def test_noisy_samplers_reach_the_data_distribution_and_converge_with_steps(name: str) -> None:
    mean_error, spread_error = _error(*_sample(name, 100))
    assert mean_error < 0.02
    if name != "lcm":  # consistency sampling on a plain denoiser shrinks the spread by design
        coarse_spread = _error(*_sample(name, 10))[1]
        assert spread_error < 0.05 and spread_error < coarse_spread


@pytest.mark.parametrize("name", ["dpm_fast", "dpm_adaptive"])
def test_dpm_solver_with_eta_ends_on_the_flow_marginal_of_its_smallest_sigma(name: str) -> None:
    mean_error, spread_error = _error(*_sample(name, 100, eta=1.0))
    assert mean_error < 0.02 and spread_error < 0.05


def test_the_ve_step_on_flow_sigmas_misses_the_distribution() -> None:
    """What the test above guards against: euler_ancestral's VE renoise applied to flow sigmas as they are."""
    mean_error, spread_error = _error(*_sample("euler_ancestral", 100, flow_model=False))
    assert mean_error > 0.2 and spread_error > 0.05


@pytest.mark.parametrize("name", ["euler_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde", "er_sde"])
def test_a_seed_gives_the_same_sample_and_another_seed_another(name: str) -> None:
    first, _ = _sample(name, 8, seed=11)
    again, _ = _sample(name, 8, seed=11)
    other, _ = _sample(name, 8, seed=12)
    assert torch.equal(first, again) and not torch.allclose(first, other)


def test_runs_that_add_no_noise_are_stepped_as_they_are() -> None:
    assert QUIET_BY_DEFAULT == ["dpm_adaptive", "dpm_fast"]  # eta 0 unless a sampler node sets it
    for name in ("dpmpp_2m", "dpm_fast"):
        assert torch.equal(_sample(name, 12)[0], _sample(name, 12, flow_model=False)[0])
    assert not SAMPLERS["euler_ancestral"].adds_noise({"eta": 0.0})
    assert SAMPLERS["dpm_adaptive"].adds_noise({"eta": 0.5})


def test_the_denoiser_sees_the_flow_sigmas_and_latents() -> None:
    seen: list[tuple[float, float]] = []

    def recording(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        seen.append((float(sigma[0]), float(x.std())))
        return denoise(x, sigma)

    sigmas = _sigmas(6)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    reported: list[float] = []

    def report(_i: int, x_now: torch.Tensor, _denoised: torch.Tensor) -> None:
        reported.append(float(x_now.std()))

    SAMPLERS["euler_ancestral"](recording, x, sigmas, GaussianNoise(SHAPE, 1), report, flow_model=True)
    assert [s for s, _ in seen] == pytest.approx(sigmas[:-1].tolist(), abs=1e-6)
    assert seen[0][0] == 1.0 and seen[0][1] == pytest.approx(float(x.std()), rel=1e-4)
    assert all(spread < 1.2 for _, spread in seen)  # flow latents, never the VE ones (x / (1 - sigma))
    assert reported == pytest.approx([spread for _, spread in seen], rel=1e-5)  # the callback sees them too
    many = _sigmas(3)  # dpm_adaptive reports more steps than there are sigmas
    calls: list[int] = []
    SAMPLERS["dpm_adaptive"](denoise, x, many, GaussianNoise(SHAPE, 1), lambda i, *_: calls.append(i), flow_model=True,
                             eta=1.0)  # fmt: skip
    assert len(calls) > len(many)
