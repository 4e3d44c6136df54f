"""Differential Diffusion: the per-step threshold against hand-computed values, the mask it makes, and an inpainting
run in which unmasked pixels are kept and fully masked ones repainted."""

from __future__ import annotations

import pytest
import torch

from diffusion.differential import DifferentialMask, step_threshold
from diffusion.model import DiffusionModel
from diffusion.schedulers import sigmas_for
from tests.diffusion.tiny_patch_models import run


@pytest.fixture(scope="module")
def model(attention_model: DiffusionModel) -> DiffusionModel:
    return attention_model


def test_threshold_falls_linearly_in_timestep(model: DiffusionModel) -> None:
    sigmas = sigmas_for(model.schedule, "normal", 4)  # timesteps 999, 666, 333, 0, then sigma 0
    t = model.timestep(sigmas[:-1]).tolist()
    assert t == pytest.approx([999, 666, 333, 0], abs=1e-2)
    assert step_threshold(sigmas[:1], sigmas, model).item() == pytest.approx(1.0)
    assert step_threshold(sigmas[1:2], sigmas, model).item() == pytest.approx(666 / 999, abs=1e-4)
    assert step_threshold(sigmas[2:3], sigmas, model).item() == pytest.approx(333 / 999, abs=1e-4)
    assert step_threshold(sigmas[-1:], sigmas, model).item() == pytest.approx(0.0)  # 0 clamps to sigma_min
    cut = sigmas[1:]  # a run ending at sigma 0 from timestep 666
    assert step_threshold(cut[1:2], cut, model).item() == pytest.approx(333 / 666, abs=1e-4)


def test_mask_per_step(model: DiffusionModel) -> None:
    sigmas = sigmas_for(model.schedule, "normal", 4)
    mask = torch.tensor([0.0, 0.2, 0.5, 0.7, 1.0]).view(1, 1, 1, 5)
    at_second = DifferentialMask()(mask, sigmas[1:2], sigmas, model)  # threshold 2/3
    assert at_second.flatten().tolist() == [0, 0, 0, 1, 1]
    assert DifferentialMask()(mask, sigmas[:1], sigmas, model).flatten().tolist() == [0, 0, 0, 0, 1]
    half = DifferentialMask(0.5)(mask, sigmas[1:2], sigmas, model)
    assert torch.allclose(half, 0.5 * at_second + 0.5 * mask)
    assert torch.equal(DifferentialMask(0.0)(mask, sigmas[1:2], sigmas, model), at_second)  # 0 reads as 1


def test_inpainting_with_differential_diffusion(model: DiffusionModel) -> None:
    original = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    mask = torch.zeros(1, 64, 64)
    mask[:, :, 16:32] = 0.5
    mask[:, :, 32:] = 1.0  # in pixels: left quarter kept, next quarter half strength, right half repainted
    latent = {"samples": original, "noise_mask": mask}
    # "simple" ends above the lowest sigma, so the last step still keeps mask-0 pixels (it would repaint them all)
    differential = run(model.with_denoise_mask(DifferentialMask()), latent=latent, steps=4, scheduler="simple")
    plain = run(model, latent=latent, steps=4, scheduler="simple")
    assert torch.allclose(differential[..., :2], original[..., :2], atol=1e-5)
    assert not torch.allclose(differential[..., 4:], original[..., 4:])
    assert not torch.allclose(differential[..., 2:4], plain[..., 2:4], atol=1e-3)  # half strength: later, less
