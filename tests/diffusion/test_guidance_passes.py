"""PAG, SAG and the Perp-Neg model option through KSampler on the tiny attention model: scale 0 is the unpatched
run bit for bit, other scales change it, and the shared module is untouched afterwards."""

from __future__ import annotations

import pytest
import torch

from diffusion.guidance import Guider, PerpNeg
from diffusion.guidance_passes import PerpNegOption, PerturbedAttentionGuidance, SelfAttentionGuidance
from diffusion.model import DiffusionModel, GuidanceStep
from diffusion.samplers import SamplerChoice
from diffusion.sampling import prepare_noise
from diffusion.sampling import run as run_guider
from diffusion.schedulers import sigmas_for
from tests.diffusion.tiny_patch_models import assert_untouched, module_state, prompts, run


@pytest.fixture(scope="module")
def model(attention_model: DiffusionModel) -> DiffusionModel:
    return attention_model


def _sag(model: DiffusionModel, scale: float, blur: float = 2.0) -> DiffusionModel:
    guidance = SelfAttentionGuidance(scale, blur)
    return model.with_unet_patch(guidance).with_post_guidance(guidance)


def test_pag(model: DiffusionModel) -> None:
    before, plain = module_state(model), run(model)
    assert torch.equal(run(model.with_post_guidance(PerturbedAttentionGuidance(0.0))), plain)
    guided = run(model.with_post_guidance(PerturbedAttentionGuidance(3.0)))
    assert guided.shape == plain.shape and not torch.allclose(guided, plain, atol=1e-3)
    assert bool(torch.isfinite(guided).all())
    assert_untouched(model, before)


def test_pag_moves_away_from_the_perturbed_estimate() -> None:
    x = torch.zeros(1, 1, 2, 2)
    cond, guided, perturbed = torch.full_like(x, 2.0), torch.full_like(x, 3.0), torch.full_like(x, 1.5)
    step = GuidanceStep(x, torch.ones(1), cond, None, guided, 5.0, lambda _x, which, patch=None: perturbed)
    assert torch.equal(PerturbedAttentionGuidance(2.0)(step), guided + (cond - perturbed) * 2.0)
    assert torch.equal(PerturbedAttentionGuidance(2.0)(GuidanceStep(x, torch.ones(1), cond, None, guided, 5.0)), guided)


def test_sag(model: DiffusionModel) -> None:
    before, plain = module_state(model), run(model)
    assert torch.equal(run(_sag(model, 0.0)), plain)
    guided = run(_sag(model, 0.8))
    assert guided.shape == plain.shape and not torch.allclose(guided, plain, atol=1e-3)
    at_cfg_one = run(_sag(model, 0.8), cfg=1.0)  # the negative is predicted for SAG alone
    assert not torch.allclose(at_cfg_one, run(model, cfg=1.0), atol=1e-3)
    assert torch.equal(run(_sag(model, 0.8), size=4), run(model, size=4))  # too small to blur: unchanged
    assert_untouched(model, before)


@pytest.mark.parametrize("cfg", [4.0, 1.0])
def test_sag_and_pag_in_either_order_each_guide_from_the_clean_pass(model: DiffusionModel, cfg: float) -> None:
    """As in the reference, each term comes from the step's unperturbed pass: SAG's mask from the attention of
    the main (or its own negative) pass, never from PAG's perturbed pass, so the order of the two nodes does not
    matter and, over one euler step (the output is the step's estimate), the terms add up."""
    pag = PerturbedAttentionGuidance(3.0)
    plain, sag_only = run(model, steps=1, cfg=cfg), run(_sag(model, 0.8), steps=1, cfg=cfg)
    pag_only = run(model.with_post_guidance(pag), steps=1, cfg=cfg)
    sag_first = run(_sag(model, 0.8).with_post_guidance(pag), steps=1, cfg=cfg)
    pag_first = run(_sag(model.with_post_guidance(pag), 0.8), steps=1, cfg=cfg)
    both = plain + (sag_only - plain) + (pag_only - plain)
    assert not torch.allclose(sag_only, plain, atol=1e-2) and not torch.allclose(pag_only, plain, atol=1e-2)
    assert torch.allclose(sag_first, pag_first, atol=1e-4)
    assert torch.allclose(sag_first, both, atol=1e-4) and torch.allclose(pag_first, both, atol=1e-4)
    several = run(_sag(model.with_post_guidance(pag), 0.8), cfg=cfg)  # and over a whole run
    assert torch.allclose(several, run(_sag(model, 0.8).with_post_guidance(pag), cfg=cfg), atol=1e-4)


def test_perp_neg_option_matches_the_perp_neg_guider(model: DiffusionModel) -> None:
    positive, negative = prompts()
    empty = [[torch.zeros(1, 7, 32), {}]]
    patched = run(model.with_post_guidance(PerpNegOption(empty, 1.5)), cfg=4.0)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    sets = (("positive", positive), ("negative", negative), ("empty_conditioning", empty))
    guider = Guider(model, sets, PerpNeg(4.0, 1.5))
    sigmas = sigmas_for(model.schedule, "normal", 3)
    noise = prepare_noise(latent["samples"], 2)
    reference, _ = run_guider(guider, SamplerChoice("euler"), sigmas, latent, noise, 2)
    assert torch.allclose(patched, reference["samples"], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(patched, run(model), atol=1e-3)


def test_perp_neg_with_an_empty_positive_stays_finite() -> None:
    same = torch.ones(1, 1, 2, 2)
    guided, _ = PerpNeg(3.0, 1.0)([same, torch.zeros_like(same), same])
    assert bool(torch.isfinite(guided).all())
