"""ControlNet residuals added inside the UNet call: the same as diffusers' own addition where everything fits;
while Deep Shrink resizes the features, the residuals that no longer fit are left out with one warning per run
(the reference's behaviour) instead of a shape error; a ControlNet of another model is a clear error."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from diffusion.control_residuals import LEFT_OUT, ControlNetMismatch
from diffusion.controlnet import ControlHint
from diffusion.deep_shrink import DeepShrink
from diffusion.model import DiffusionModel
from diffusion.sampling import sample
from diffusion.step import StepInfo, unet_step
from tests.diffusion.tiny_patch_models import assert_untouched, module_state, prompts
from tests.diffusion.tiny_sampling import sample_request

X = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
T = torch.tensor([500.0, 500.0])
CONTEXT = torch.randn(2, 7, 32, generator=torch.Generator().manual_seed(2))


def _resize(h: torch.Tensor, width: int, height: int) -> torch.Tensor:
    return F.interpolate(h, size=(height, width), mode="bilinear")


def _shrink(start: float = 0.0, end: float = 0.5) -> DeepShrink:
    """Deep Shrink after input block 1 (level 0's layer) without keeping its skip: every later skip feature and
    the middle block are half size while it acts."""
    return DeepShrink(1, 2.0, start, end, False, _resize, partial(_resize))


@pytest.fixture(scope="module")
def model(attention_model: DiffusionModel) -> DiffusionModel:
    return attention_model


@pytest.fixture(scope="module")
def controlnet(model: DiffusionModel) -> torch.nn.Module:
    from diffusers import ControlNetModel

    torch.manual_seed(6)
    net = ControlNetModel.from_unet(model.unet, conditioning_embedding_out_channels=(4, 4, 8, 8))
    with torch.no_grad():
        for param in net.parameters():
            param.normal_(0, 0.2)
    return net.eval().requires_grad_(False)


def _residuals(controlnet: torch.nn.Module) -> tuple[list[torch.Tensor], torch.Tensor]:
    hint = ControlHint(controlnet, torch.rand(1, 64, 64, 3))
    result = hint.residuals(X, T, CONTEXT, 0.0)
    assert result is not None
    return result


def _forward(
    model: DiffusionModel, down: list[torch.Tensor], mid: torch.Tensor, percent: float, warnings: list[str]
) -> torch.Tensor:
    with unet_step(StepInfo(percent, torch.tensor([False, True]), (8, 8), warn=warnings.append)), torch.no_grad():
        return model.unet_forward(X, T, CONTEXT, None, down, mid)


def test_residuals_that_fit_add_as_diffusers_adds_them(model: DiffusionModel, controlnet: torch.nn.Module) -> None:
    down, mid = _residuals(controlnet)
    before, warnings = module_state(model), []
    ours = _forward(model, down, mid, 0.0, warnings)
    with torch.no_grad():
        theirs = model.unet(
            X, T, encoder_hidden_states=CONTEXT, down_block_additional_residuals=down, mid_block_additional_residual=mid
        ).sample
    assert torch.equal(ours, theirs) and not warnings
    assert not torch.allclose(ours, _forward(model, [d * 0 for d in down], mid * 0, 0.0, warnings), atol=1e-4)
    assert_untouched(model, before)


def test_while_deep_shrink_acts_the_residuals_that_do_not_fit_are_left_out(
    model: DiffusionModel, controlnet: torch.nn.Module
) -> None:
    down, mid = _residuals(controlnet)
    shrunk, warnings = model.with_unet_patch(_shrink()), []
    out = _forward(shrunk, down, mid, 0.0, warnings)
    assert out.shape == X.shape and bool(torch.isfinite(out).all())
    assert warnings and set(warnings) == {LEFT_OUT}
    # only the input convolution's skip keeps its size: changing any other residual, or the middle one, changes
    # nothing; changing that one does
    others = [down[0], *(d * 5 for d in down[1:])]
    assert torch.equal(_forward(shrunk, others, mid * 5, 0.0, []), out)
    assert not torch.allclose(_forward(shrunk, [down[0] * 5, *down[1:]], mid, 0.0, []), out, atol=1e-4)
    # once the shrink ends every residual fits again, without a warning
    after: list[str] = []
    assert torch.equal(_forward(shrunk, down, mid, 0.7, after), _forward(model, down, mid, 0.7, []))
    assert not after


def test_a_controlnet_of_another_model_is_a_clear_error(model: DiffusionModel, controlnet: torch.nn.Module) -> None:
    down, mid = _residuals(controlnet)
    before = module_state(model)
    with pytest.raises(ControlNetMismatch, match="gives 3 residuals where the UNet has 4"):
        _forward(model, down[:3], mid, 0.0, [])
    with pytest.raises(ControlNetMismatch, match="another model"):
        _forward(model, down, torch.zeros(2, mid.shape[1] + 1, *mid.shape[2:]), 0.0, [])
    assert_untouched(model, before)


def test_sampling_with_deep_shrink_and_a_controlnet_warns_once(
    model: DiffusionModel, controlnet: torch.nn.Module
) -> None:
    positive, negative = prompts()
    hint = ControlHint(controlnet, torch.rand(1, 64, 64, 3))
    controlled = [[positive[0][0], {"control": hint}]]
    request = partial(sample_request, seed=2, steps=4, cfg=4.0)

    def go(m: DiffusionModel, pos: list, warnings: list[str] | None = None) -> torch.Tensor:
        return sample(request(m, pos, negative), None, None if warnings is None else warnings.append)["samples"]

    warnings: list[str] = []
    always = go(model.with_unet_patch(_shrink(0.0, 1.0)), controlled, warnings)  # every step's call drops some
    assert warnings == [LEFT_OUT] and bool(torch.isfinite(always).all())
    early: list[str] = []
    shrunk = model.with_unet_patch(_shrink(0.0, 0.3))
    with_control = go(shrunk, controlled, early)
    assert early == [LEFT_OUT]
    assert not torch.allclose(with_control, go(shrunk, positive), atol=1e-3)  # the ControlNet acts after the shrink
    plain: list[str] = []
    go(model, controlled, plain)
    assert not plain
