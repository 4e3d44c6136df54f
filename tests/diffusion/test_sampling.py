"""Samplers, schedulers and the KSampler request: determinism, accuracy on a known ODE, step semantics, masks."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from diffusion.samplers import SAMPLERS, SDE
from diffusion.sampling import SampleRequest, prepare_noise, sample, schedule_sigmas
from diffusion.schedulers import SCHEDULERS, DiscreteSchedule, karras, sigmas_for
from tests.diffusion.tiny_sampling import sample_request

SCHEDULE = DiscreteSchedule.scaled_linear(0.00085, 0.012, 1000)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_schedulers_are_decreasing_and_end_at_zero(name: str) -> None:
    sigmas = sigmas_for(SCHEDULE, name, 10)
    assert len(sigmas) == 11
    assert float(sigmas[-1]) == 0.0
    assert bool((sigmas[:-1] > 0).all()) and bool((sigmas[1:] < sigmas[:-1]).all())
    assert float(sigmas[0]) <= SCHEDULE.sigma_max + 1e-4
    if name != "ddim_uniform":
        assert float(sigmas[0]) == pytest.approx(SCHEDULE.sigma_max, rel=1e-4)


def test_karras_endpoints_and_sigma_t_round_trip() -> None:
    sigmas = karras(SCHEDULE, 5)
    assert float(sigmas[-2]) == pytest.approx(SCHEDULE.sigma_min, rel=1e-5)
    t = torch.tensor([0.0, 250.5, 999.0])
    assert torch.allclose(SCHEDULE.sigma_to_t(SCHEDULE.t_to_sigma(t)), t, atol=1e-3)


def test_unknown_scheduler() -> None:
    with pytest.raises(ValueError, match="unknown scheduler"):
        sigmas_for(SCHEDULE, "nope", 3)


DETERMINISTIC = ["euler", "heun", "dpm_2", "lms", "dpmpp_2m", "uni_pc", "ddim"]


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_samplers_solve_the_gaussian_ode(name: str) -> None:
    """For data ~ N(0, s²) the exact denoiser is x s²/(s²+σ²) and the ODE maps x_T to x_T s/sqrt(s²+σ_T²)."""
    s = 0.5

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return x * s**2 / (s**2 + sigma[:, None, None, None] ** 2)

    x_t = torch.randn(1, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    errors = []
    for steps in (10, 30):
        sig = karras(SCHEDULE, steps).double()
        exact = x_t * s / math.sqrt(s**2 + float(sig[0]) ** 2)
        out = SAMPLERS[name](denoise, x_t.clone(), sig, lambda *_: torch.zeros_like(x_t), lambda *a: None)
        errors.append(float((out - exact).abs().max() / exact.abs().max()))
    assert errors[1] < errors[0] / 2.5  # converges at least at first order
    assert errors[1] < (0.06 if name in ("euler", "ddim") else 0.006)


def _request(model, cond, **overrides) -> SampleRequest:
    return sample_request(model, *cond, **overrides)


@pytest.fixture(scope="module")
def cond(sd1):
    p, n = sd1.clip.encode("a cat"), sd1.clip.encode("")
    return [[p.cond, {"pooled_output": p.pooled}]], [[n.cond, {"pooled_output": n.pooled}]]


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_runs_and_is_deterministic(sd1, cond, name: str) -> None:
    a = sample(_request(sd1.model, cond, sampler=name))["samples"]
    b = sample(_request(sd1.model, cond, sampler=name))["samples"]
    assert a.shape == (1, 4, 8, 8) and bool(torch.isfinite(a).all())
    assert torch.equal(a, b)
    c = sample(_request(sd1.model, cond, sampler=name, seed=4))["samples"]
    assert not torch.equal(a, c)


def _distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm())


@pytest.mark.parametrize("name", sorted(SDE))
def test_sde_step_count_change_stays_closer_than_another_seed(sd1, cond, name: str) -> None:
    eight = sample(_request(sd1.model, cond, sampler=name, steps=8, scheduler="karras"))["samples"]
    nine = sample(_request(sd1.model, cond, sampler=name, steps=9, scheduler="karras"))["samples"]
    other = sample(_request(sd1.model, cond, sampler=name, steps=8, scheduler="karras", seed=4))["samples"]
    assert _distance(eight, nine) < 0.5 * _distance(eight, other)


@pytest.mark.parametrize("name", sorted(SDE))
def test_sde_batch_item_is_reproduced_from_its_batch_index(sd1, cond, name: str) -> None:
    """Each item's Brownian tree is seeded seed + index, so a latent picked from a batch reruns to the same item."""
    batch = sample(_request(sd1.model, cond, sampler=name, latent={"samples": torch.zeros(2, 4, 8, 8)}))["samples"]
    picked = {"samples": torch.zeros(1, 4, 8, 8), "batch_index": [1]}
    alone = sample(_request(sd1.model, cond, sampler=name, latent=picked))["samples"]
    assert torch.allclose(alone, batch[1:], rtol=1e-4, atol=1e-3)
    assert not torch.allclose(batch[:1], batch[1:], atol=1e-3)


@pytest.mark.parametrize("name", sorted(SDE))
def test_sde_samplers_run_on_one_step_and_leftover_noise_schedules(sd1, cond, name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no query may fall outside the tree
        one = sample(_request(sd1.model, cond, sampler=name, steps=1))["samples"]
        leftover = sample(_request(sd1.model, cond, sampler=name, steps=4, last_step=2, force_full_denoise=False))
    assert bool(torch.isfinite(one).all()) and bool(torch.isfinite(leftover["samples"]).all())


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_scheduler_samples(sd1, cond, name: str) -> None:
    out = sample(_request(sd1.model, cond, scheduler=name))["samples"]
    assert bool(torch.isfinite(out).all())


def test_noise_is_cpu_seeded_in_the_latent_shape() -> None:
    latent = torch.zeros(2, 4, 3, 3)
    expected = torch.randn(latent.shape, generator=torch.manual_seed(42))
    assert torch.equal(prepare_noise(latent, 42), expected)
    gen = torch.Generator().manual_seed(42)
    one_by_one = [torch.randn(1, 4, 3, 3, generator=gen) for _ in range(2)]
    picked = prepare_noise(torch.zeros(1, 4, 3, 3), 42, batch_index=[1])
    assert torch.equal(picked, one_by_one[1])


def test_denoise_and_step_semantics(sd1) -> None:
    model = sd1.model
    full = schedule_sigmas(model, "normal", 10)
    assert len(full) == 11
    partial = schedule_sigmas(model, "normal", 4, denoise=0.5)
    assert len(partial) == 5 and torch.allclose(partial, sigmas_for(model.schedule, "normal", 8)[-5:])
    assert len(schedule_sigmas(model, "normal", 4, denoise=0.0)) == 0
    cut = schedule_sigmas(model, "normal", 10, start_step=3, last_step=6, force_full_denoise=False)
    assert torch.allclose(cut, full[3:7])
    assert float(schedule_sigmas(model, "normal", 10, last_step=6)[-1]) == 0.0
    assert len(schedule_sigmas(model, "normal", 10, start_step=10)) == 0


def test_zero_denoise_and_empty_range_return_the_input(sd1, cond) -> None:
    latent = {"samples": torch.randn(1, 4, 8, 8)}
    assert torch.equal(sample(_request(sd1.model, cond, latent=latent, denoise=0.0))["samples"], latent["samples"])
    out = sample(_request(sd1.model, cond, latent=latent, start_step=5, last_step=5))["samples"]
    assert torch.equal(out, latent["samples"])


def test_leftover_noise_then_continue(sd1, cond) -> None:
    first = sample(_request(sd1.model, cond, steps=4, last_step=2, force_full_denoise=False))
    rest = sample(_request(sd1.model, cond, steps=4, start_step=2, add_noise=False, latent=first))["samples"]
    assert first["samples"].abs().mean() > rest.abs().mean() * 0.1
    assert bool(torch.isfinite(rest).all())


def test_inpainting_keeps_the_unmasked_area(sd1, cond) -> None:
    original = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 64, 64)
    mask[:, :, :32] = 1.0  # repaint the left half (in pixels)
    out = sample(_request(sd1.model, cond, latent={"samples": original, "noise_mask": mask}))
    assert "noise_mask" not in out
    assert torch.equal(out["samples"][..., 4:], original[..., 4:])
    assert not torch.allclose(out["samples"][..., :4], original[..., :4])


def test_progress_reports_every_step(sd1, cond) -> None:
    seen = []
    sample(_request(sd1.model, cond, steps=3, sampler="heun"), lambda i, n, x: seen.append((i, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_cfg_one_skips_the_negative(sd1, cond) -> None:
    pos, _neg = cond
    a = sample(_request(sd1.model, cond, cfg=1.0))["samples"]
    b = sample(_request(sd1.model, (pos, []), cfg=1.0))["samples"]
    assert torch.equal(a, b)


class _Control:
    """A ControlNet stand-in that adds a constant to every residual, for the rows it is given."""

    def __init__(self, model, value: float) -> None:
        self.value, self.calls, self.previous = value, [], None
        self.model = model

    def residuals(self, x, timestep, encoder_hidden_states, step_percent, cond_indices, model=None):
        self.calls.append(list(cond_indices))
        unet = self.model.unet
        b, h, w = x.shape[0], x.shape[2], x.shape[3]
        downs = []
        for shape in _down_shapes(unet, h, w):
            downs.append(torch.full((b, *shape), self.value))
        mid_c = unet.config.block_out_channels[-1]
        scale = 2 ** (len(unet.config.block_out_channels) - 1)
        return downs, torch.full((b, mid_c, h // scale, w // scale), self.value)


def _down_shapes(unet, h, w):
    chans = unet.config.block_out_channels
    lpb = unet.config.layers_per_block
    shapes = [(chans[0], h, w)]
    for i, c in enumerate(chans):
        shapes += [(c, h, w)] * lpb
        if i < len(chans) - 1:
            h, w = h // 2, w // 2
            shapes.append((c, h, w))
    return shapes


def test_control_hook_adds_residuals_for_its_rows(sd1, cond) -> None:
    pos, neg = cond
    control = _Control(sd1.model, 0.5)
    controlled = [[pos[0][0], {**pos[0][1], "control": control}]]
    plain = sample(_request(sd1.model, cond))["samples"]
    out = sample(_request(sd1.model, (controlled, neg)))["samples"]
    assert control.calls and all(rows == [0] for rows in control.calls)
    assert not torch.allclose(out, plain)
    zero = _Control(sd1.model, 0.0)
    same = sample(_request(sd1.model, ([[pos[0][0], {"control": zero}]], neg)))["samples"]
    assert torch.allclose(same, plain, atol=1e-6)


def test_area_conditioning_acts_only_inside_its_area(sd1, cond) -> None:
    pos, neg = cond
    other = sd1.clip.encode("a mountain lake at dawn").cond
    base = sample(_request(sd1.model, cond, cfg=1.0))["samples"]
    area = [[other, {"area": (8, 4, 0, 4), "strength": 1.0}]]  # h, w, y, x in latent cells: the right half
    out = sample(_request(sd1.model, (pos + area, neg), cfg=1.0, steps=1))["samples"]
    one = sample(_request(sd1.model, cond, cfg=1.0, steps=1))["samples"]
    assert torch.allclose(out[..., :4], one[..., :4], atol=1e-5)
    assert not torch.allclose(out[..., 4:], one[..., 4:], atol=1e-4)
    pct = [[other, {"area": ("percentage", 1.0, 0.5, 0.0, 0.5), "strength": 1.0}]]
    same = sample(_request(sd1.model, (pos + pct, neg), cfg=1.0, steps=1))["samples"]
    assert torch.allclose(same, out, atol=1e-6)
    assert base.shape == out.shape


def test_mask_conditioning_and_timestep_range(sd1, cond) -> None:
    pos, neg = cond
    other = sd1.clip.encode("a mountain lake at dawn").cond
    mask = torch.zeros(1, 8, 8)
    mask[:, :4] = 1.0  # top half
    masked = [[other, {"mask": mask, "mask_strength": 1.0}]]
    one = sample(_request(sd1.model, cond, cfg=1.0, steps=1))["samples"]
    out = sample(_request(sd1.model, (pos + masked, neg), cfg=1.0, steps=1))["samples"]
    assert torch.allclose(out[..., 4:, :], one[..., 4:, :], atol=1e-4)  # latents ~15: float32 batch rounding
    assert not torch.allclose(out[..., :4, :], one[..., :4, :], atol=1e-4)
    late = [[other, {"start_percent": 0.9, "end_percent": 1.0}]]  # inactive at the first (noisiest) step
    assert torch.allclose(sample(_request(sd1.model, (pos + late, neg), cfg=1.0, steps=1))["samples"], one)


class _AreaControl(_Control):
    """Records the crop each call is made for."""

    def residuals(self, x, timestep, encoder_hidden_states, step_percent, cond_indices, crop=None, model=None):
        self.crops.append((crop, tuple(x.shape[-2:])))
        return super().residuals(x, timestep, encoder_hidden_states, step_percent, cond_indices)


def test_area_entries_predict_on_their_crop_and_controls_follow(sd1, cond) -> None:
    pos, neg = cond
    other = sd1.clip.encode("a mountain lake at dawn").cond
    control = _AreaControl(sd1.model, 0.5)
    control.crops = []
    area = [[other, {"area": (8, 4, 0, 4), "control": control}]]  # the right half, at its own 8 x 4 size
    with_control = sample(_request(sd1.model, (pos + area, neg), cfg=1.0, steps=1))["samples"]
    assert control.crops == [((8, 8, 0, 8, 4, 8), (8, 4))]
    without = sample(_request(sd1.model, ([*pos, [other, {"area": (8, 4, 0, 4)}]], neg), cfg=1.0, steps=1))
    assert torch.equal(with_control[..., :4], without["samples"][..., :4])
    assert not torch.allclose(with_control[..., 4:], without["samples"][..., 4:], atol=1e-4)
