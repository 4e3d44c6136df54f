"""Post-guidance model options on small tensors with known answers, and their order on a model."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from diffusion.model import DiffusionModel, GuidanceStep
from diffusion.post_guidance import (
    AdaptiveProjectedGuidance,
    CFGNorm,
    CFGZeroStar,
    EpsilonScaling,
    OperationOnGuidance,
    RescaleCFG,
)
from diffusion.schedulers import DiscreteSchedule


def step(scale: float = 5.0, seed: int = 0) -> GuidanceStep:
    g = torch.Generator().manual_seed(seed)
    x, cond, uncond = (torch.randn(2, 4, 3, 3, generator=g) for _ in range(3))
    return GuidanceStep(x, torch.tensor([2.0, 0.5]), cond, uncond, uncond + scale * (cond - uncond), scale)


def test_rescale_cfg_mixes_plain_and_rescaled_guidance() -> None:
    s = step()
    assert torch.allclose(RescaleCFG(0.0)(s), s.guided, atol=1e-5)
    out = RescaleCFG(1.0)(s)
    sig = s.sigma.view(-1, 1, 1, 1)
    x = s.x / (sig**2 + 1)
    norm = (sig**2 + 1) ** 0.5 / sig
    v_out, v_cond = (x - out) * norm, (x - s.cond) * norm
    assert torch.allclose(v_out.std(dim=(1, 2, 3)), v_cond.std(dim=(1, 2, 3)), atol=1e-5)
    assert torch.equal(RescaleCFG(1.0)(replace(s, uncond=None)), s.guided)


def test_cfg_zero_star_uses_the_least_squares_scale() -> None:
    s = step()
    same = replace(s, uncond=s.cond, guided=s.cond)
    assert torch.allclose(CFGZeroStar()(same), s.cond, atol=1e-5)  # alpha 1: nothing changes
    out = CFGZeroStar()(s)
    ce, ue = (s.x - s.cond).flatten(1), (s.x - s.uncond).flatten(1)
    alpha = ((ce * ue).sum(1) / ue.pow(2).sum(1)).view(-1, 1, 1, 1)
    expected = s.uncond * alpha + s.scale * (s.cond - s.uncond * alpha)
    assert torch.allclose(out, expected, atol=1e-5)


def test_cfg_norm_caps_the_channel_norm() -> None:
    s = step(scale=8.0)
    out = CFGNorm(1.0)(s)
    assert (out.norm(dim=1) <= s.cond.norm(dim=1) + 1e-5).all()
    assert torch.allclose(CFGNorm(0.5)(s), out * 0.5)


def test_epsilon_scaling_divides_the_noise() -> None:
    s = step()
    assert torch.allclose(EpsilonScaling(1.0)(s), s.guided)
    assert torch.allclose(s.x - EpsilonScaling(2.0)(s), (s.x - s.guided) / 2)


def test_apg_reduces_to_cfg_and_drops_the_parallel_part() -> None:
    s = step()
    assert torch.allclose(AdaptiveProjectedGuidance(1.0, 0.0, 0.0)(s), s.guided, atol=1e-5)
    out = AdaptiveProjectedGuidance(0.0, 0.0, 0.0)(s)
    update = (out - s.cond) / (s.scale - 1)
    assert torch.allclose((update * s.cond).sum(dim=(1, 2, 3)), torch.zeros(2), atol=1e-4)
    capped = AdaptiveProjectedGuidance(1.0, 0.1, 0.0)(s)
    assert ((capped - s.cond) / (s.scale - 1)).flatten(1).norm(dim=1).max() <= 0.1 + 1e-5


def test_apg_momentum_accumulates_within_a_run_and_restarts() -> None:
    apg = AdaptiveProjectedGuidance(1.0, 0.0, 0.5)
    first = step(seed=1)
    assert torch.allclose(apg(first), first.guided, atol=1e-5)  # no history yet
    later = replace(step(seed=2), sigma=torch.tensor([1.0, 0.2]))
    delta = (later.cond - later.uncond) + 0.5 * (first.cond - first.uncond)
    assert torch.allclose(apg(later), later.cond + (later.scale - 1) * delta, atol=1e-4)
    again = step(seed=1)  # sigma rises: a new run
    assert torch.allclose(apg(again), again.guided, atol=1e-5)


def test_operation_on_guidance() -> None:
    s = step()
    assert torch.allclose(OperationOnGuidance(lambda latent: latent)(s), s.guided, atol=1e-5)
    doubled = OperationOnGuidance(lambda latent: 2 * latent)(s)
    assert torch.allclose(doubled, s.uncond + 2 * s.scale * (s.cond - s.uncond), atol=1e-5)
    assert torch.allclose(OperationOnGuidance(lambda latent: -latent)(replace(s, uncond=None)), -s.guided)


def test_model_applies_its_options_in_order() -> None:
    schedule = DiscreteSchedule.scaled_linear(0.00085, 0.012, 1000)
    model = DiffusionModel(torch.nn.Identity(), "sd1", "eps", schedule, None, ())  # type: ignore[arg-type]
    patched = model.with_post_guidance(lambda st: st.guided + 1).with_post_guidance(lambda st: st.guided * 2)
    s = step()
    assert torch.allclose(patched.guide(s), (s.guided + 1) * 2)
    assert model.post_guidance == ()


@pytest.mark.parametrize("scale", [1.0, 7.0])
def test_options_leave_a_positive_only_step_alone(scale: float) -> None:
    s = replace(step(scale=scale), uncond=None)
    for option in (RescaleCFG(0.7), CFGZeroStar(), AdaptiveProjectedGuidance(0.5, 5.0, 0.3)):
        assert torch.equal(option(s), s.guided)


def test_zero_terminal_snr_keeps_the_first_level_and_ends_in_noise() -> None:
    schedule = DiscreteSchedule.scaled_linear(0.00085, 0.012, 1000)
    rescaled = schedule.zero_terminal_snr()
    assert rescaled.sigma_min == pytest.approx(schedule.sigma_min, rel=1e-4)
    assert rescaled.sigma_max > 4000 and bool((rescaled.sigmas[1:] > rescaled.sigmas[:-1]).all())
