"""Step noise sources: the Brownian tree's increments are a function of the seed and the interval alone."""

from __future__ import annotations

import itertools
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torchsde

from diffusion.noise import BrownianTreeNoise, GaussianNoise, seeded_generator
from diffusion.samplers import SAMPLERS, SDE
from diffusion.schedulers import DiscreteSchedule, karras

SCHEDULE = DiscreteSchedule.scaled_linear(0.00085, 0.012, 1000)
X = torch.zeros(1, 4, 8, 8)
LO, HI = 0.03, 14.6


def _tree(seed: int, x: torch.Tensor = X) -> BrownianTreeNoise:
    return BrownianTreeNoise(x, LO, HI, [seed + i for i in range(x.shape[0])])


def _q(tree: BrownianTreeNoise, a: float, b: float) -> torch.Tensor:
    return tree(torch.tensor(a), torch.tensor(b))


def test_same_seed_same_noise_other_seed_other_noise() -> None:
    a = _q(_tree(5), 10.0, 7.0)
    assert a.shape == X.shape
    assert torch.equal(a, _q(_tree(5), 10.0, 7.0))
    assert not torch.allclose(a, _q(_tree(6), 10.0, 7.0))


def test_increments_add_up_whatever_was_asked_before() -> None:
    """W(c) - W(a) = (W(b) - W(a)) + (W(c) - W(b)): the noise of (a, c) is that of (a, b) and (b, c) combined."""
    a, b, c = 12.0, 5.0, 0.5
    whole = _q(_tree(1), a, c) * (a - c) ** 0.5
    split_tree = _tree(1)
    parts = _q(split_tree, a, b) * (a - b) ** 0.5 + _q(split_tree, b, c) * (b - c) ** 0.5
    assert torch.allclose(whole, parts, atol=1e-5)
    wandered = _tree(1)
    for lo, hi in ((0.1, 0.2), (13.0, 14.0), (3.0, 3.5)):
        _q(wandered, hi, lo)
    assert torch.allclose(_q(wandered, a, c), whole / (a - c) ** 0.5, atol=1e-6)


def test_noise_is_unit_gaussian_and_points_down_the_schedule() -> None:
    big = torch.zeros(1, 4, 64, 64)
    n = _q(_tree(3, big), 2.0, 1.0)
    assert abs(float(n.mean())) < 0.05 and abs(float(n.std()) - 1) < 0.05
    assert torch.equal(_q(_tree(3, big), 1.0, 2.0), -n)


def test_batch_items_match_single_runs_with_seed_plus_index() -> None:
    batch = _q(_tree(40, torch.zeros(3, 4, 8, 8)), 9.0, 4.0)
    for i in range(3):
        assert torch.equal(batch[i : i + 1], _q(_tree(40 + i), 9.0, 4.0))
    sigmas = torch.tensor([HI, 4.0, LO, 0.0])
    picked = BrownianTreeNoise.for_sigmas(X, sigmas, 40, batch_index=[2])
    assert torch.equal(_q(picked, 9.0, 4.0), batch[2:])


def test_agrees_with_torchsde_brownian_tree() -> None:
    """Other tools query torchsde.BrownianTree(sigma_min, 0, sigma_max, entropy=seed) for (sigma_next, sigma)."""
    sigmas = karras(SCHEDULE, 6)
    noise = BrownianTreeNoise.for_sigmas(X, sigmas, 11)
    reference = torchsde.BrownianTree(float(sigmas[-2]), torch.zeros_like(X), float(sigmas[0]), entropy=11)
    for s, s_next in itertools.pairwise(sigmas[:-1]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchsde warns about the unrounded ends, then clamps them
            expected = (reference(float(s_next), float(s)) * -1) / float(s - s_next) ** 0.5
        assert torch.allclose(noise(s, s_next), expected, atol=1e-6)


def test_empty_interval_and_schedule_ends_give_finite_noise_without_warnings() -> None:
    sigmas = karras(SCHEDULE, 4)
    noise = BrownianTreeNoise.for_sigmas(X, sigmas, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(noise(sigmas[1], sigmas[1]), torch.zeros_like(X))
        assert bool(torch.isfinite(noise(sigmas[0], sigmas[-2])).all())
    single = BrownianTreeNoise.for_sigmas(X, torch.tensor([HI, 0.0]), 0)  # one step: a tree of zero length
    assert torch.equal(single(torch.tensor(HI), torch.tensor(HI)), torch.zeros_like(X))


def test_gaussian_noise_continues_one_seeded_stream() -> None:
    noise = GaussianNoise(X.shape, 7)
    gen = seeded_generator(7)
    for _ in range(2):
        assert torch.equal(noise(torch.tensor(2.0), torch.tensor(1.0)), torch.randn(X.shape, generator=gen))


def _gaussian_data_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The exact x0 estimate for data ~ N(0, 0.5²), so results depend only on the sampler and its noise."""
    return x * 0.25 / (0.25 + sigma[:, None, None, None] ** 2)


def _sde_run(name: str, steps: int, seed: int) -> torch.Tensor:
    sigmas = karras(SCHEDULE, steps)
    x = torch.randn(1, 4, 16, 16, generator=seeded_generator(0)) * sigmas[0]
    noise = BrownianTreeNoise.for_sigmas(x, sigmas, seed)
    return SAMPLERS[name](_gaussian_data_denoiser, x, sigmas, noise, lambda *a: None)


@pytest.mark.parametrize("name", sorted(SDE))
def test_sde_samplers_converge_as_the_step_count_grows(name: str) -> None:
    """Doubling the steps refines the same Brownian path, so the image stays close; a per-step stream of fresh
    draws would pair up unrelated noise and land about as far away as another seed."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the schedule ends at 0: no query may fall outside the tree
        eight, sixteen, other_seed = _sde_run(name, 8, 1), _sde_run(name, 16, 1), _sde_run(name, 8, 2)
    assert bool(torch.isfinite(eight).all())
    assert float((eight - sixteen).norm()) < 0.5 * float((eight - other_seed).norm())


@pytest.mark.parametrize("name", sorted(SDE))
def test_each_step_asks_for_the_noise_of_its_own_interval(name: str) -> None:
    """The published rules: 2M SDE takes (sigma, sigma_next); DPM++ SDE takes (sigma, sigma_mid) for its first
    stage and (sigma, sigma_next) for the second, which restarts from x; no noise is asked for the step to 0."""
    sigmas = karras(SCHEDULE, 3)
    x = torch.randn(1, 4, 8, 8, generator=seeded_generator(0)) * sigmas[0]
    tree = BrownianTreeNoise.for_sigmas(x, sigmas, 0)
    asked: list[tuple[float, float]] = []

    def recording(sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        asked.append((float(sigma), float(sigma_next)))
        return tree(sigma, sigma_next)

    SAMPLERS[name](_gaussian_data_denoiser, x, sigmas, recording, lambda *a: None)
    s = [float(v) for v in sigmas]
    if name.startswith(("dpmpp_2m_sde", "dpmpp_3m_sde")):  # one stage per step
        assert asked == [(s[0], s[1]), (s[1], s[2])]
    else:
        mids = [(s[i] * s[i + 1]) ** 0.5 for i in range(2)]  # the log-sigma midpoints
        expected = [s[0], mids[0], s[0], s[1], s[1], mids[1], s[1], s[2]]
        assert [v for pair in asked for v in pair] == pytest.approx(expected, rel=1e-5)


def test_torchsde_is_imported_only_when_an_sde_sampler_runs() -> None:
    code = "import sys, diffusion.sampling, nodes.sampling; assert 'torchsde' not in sys.modules"
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=120)
