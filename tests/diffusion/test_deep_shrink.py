"""Deep Shrink on the tiny attention model: it acts only within its percent range, keeps the output's size, and
leaves the shared module as it was."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from diffusion.deep_shrink import DeepShrink, encoder_blocks
from diffusion.model import DiffusionModel
from diffusion.step import StepInfo, unet_step
from tests.diffusion.tiny_patch_models import assert_untouched, module_state, run


def _resize(h: torch.Tensor, width: int, height: int, mode: str = "bilinear") -> torch.Tensor:
    return F.interpolate(h, size=(height, width), mode=mode)


def _shrink(block: int = 1, start: float = 0.0, end: float = 0.35, after_skip: bool = True) -> DeepShrink:
    return DeepShrink(block, 2.0, start, end, after_skip, _resize, partial(_resize, mode="nearest"))


@pytest.fixture(scope="module")
def model(attention_model: DiffusionModel) -> DiffusionModel:
    return attention_model


def test_encoder_blocks_follow_the_ldm_numbering(model: DiffusionModel) -> None:
    unet = model.unet
    blocks = encoder_blocks(unet)
    level0, level1 = unet.down_blocks
    assert blocks == [
        (level0.attentions[0], level0.downsamplers[0]),  # 1: level 0's layer
        (level0.downsamplers[0], level1.resnets[0]),  # 2: its downsampler
        (level1.attentions[0], unet.mid_block),  # 3: level 1's layer, into the middle block
    ]


def _middle_size(model: DiffusionModel, patch: DeepShrink, percent: float) -> tuple[int, int]:
    seen: list[tuple[int, int]] = []
    probe = model.unet.mid_block.register_forward_hook(lambda _m, _a, out: seen.append(tuple(out.shape[-2:])))
    x = torch.zeros(1, 4, 8, 8)
    try:
        with unet_step(StepInfo(percent, torch.tensor([False]), (8, 8))), torch.no_grad():
            out = model.with_unet_patch(patch).unet_forward(x, torch.tensor([500.0]), torch.zeros(1, 7, 32), None)
    finally:
        probe.remove()
    assert out.shape == x.shape
    return seen[0]


@pytest.mark.parametrize("after_skip", [True, False])
@pytest.mark.parametrize("block", [1, 2, 3])
def test_shrinks_only_within_its_range(model: DiffusionModel, block: int, after_skip: bool) -> None:
    patch = _shrink(block, 0.2, 0.5, after_skip)
    assert _middle_size(model, patch, 0.3) == (2, 2)  # 8 -> 4 at level 1, halved once more by the patch
    assert _middle_size(model, patch, 0.1) == (4, 4)
    assert _middle_size(model, patch, 0.5) == (4, 4)  # the end is excluded


def test_sampling_with_deep_shrink(model: DiffusionModel) -> None:
    before = module_state(model)
    plain = run(model)
    assert torch.equal(run(model.with_unet_patch(_shrink(start=1.0, end=1.0))), plain)  # never active
    shrunk = run(model.with_unet_patch(_shrink()))
    assert shrunk.shape == plain.shape and not torch.allclose(shrunk, plain, atol=1e-3)
    odd = run(model.with_unet_patch(_shrink(block=2)), size=10)  # 10 -> 5 -> 3 (rounded) and back
    assert odd.shape == (1, 4, 10, 10) and bool(torch.isfinite(odd).all())
    assert torch.equal(run(model.with_unet_patch(_shrink(block=9))), plain)  # a block the UNet lacks
    assert_untouched(model, before)
