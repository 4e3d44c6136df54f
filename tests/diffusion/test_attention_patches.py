"""HyperTile, token merging and the middle-block patches on a tiny UNet with attention at every depth: the
output keeps its shape, neutral settings change nothing, and the shared module is left as it was."""

from __future__ import annotations

import random

import pytest
import torch

from diffusion.attention_patches import (
    AttentionRecorder,
    HyperTile,
    MidBlockIdentity,
    TokenMerging,
    bipartite_matching,
    blur_masked,
    gaussian_blur,
    middle_self_attention,
    random_divisor,
    received_mask,
    self_attention_layers,
    token_grid,
    value_passthrough,
)
from diffusion.model import DiffusionModel
from diffusion.step import StepInfo, unet_step
from diffusion.unet_patches import FreeU
from tests.diffusion.tiny_patch_models import assert_untouched, module_state, run


@pytest.fixture(scope="module")
def model(attention_model: DiffusionModel) -> DiffusionModel:
    return attention_model


@pytest.fixture(scope="module")
def plain(model: DiffusionModel) -> torch.Tensor:
    return run(model)


def test_token_grid_finds_the_depth() -> None:
    assert token_grid((8, 8), 64) == (8, 8, 0)
    assert token_grid((8, 8), 16) == (4, 4, 1)
    assert token_grid((9, 7), 20) == (5, 4, 1)  # stride-2 convolutions round up
    assert token_grid((8, 8), 10) is None


def test_random_divisor_picks_among_the_largest_tile_counts() -> None:
    rng = random.Random(0)
    assert random_divisor(8, 4, 1, rng) == 2  # smallest divisor >= 4 is 4: 2 tiles
    assert random_divisor(8, 64, 3, rng) == 1  # a tile bigger than the grid: one tile
    assert {random_divisor(12, 2, 2, random.Random(s)) for s in range(20)} == {6, 4}  # divisors 2 and 3


def test_hypertile_covering_the_grid_is_plain_attention(model: DiffusionModel, plain: torch.Tensor) -> None:
    before = module_state(model)
    covering = run(model.with_unet_patch(HyperTile(2048, 2, 1, False)))
    assert torch.equal(covering, plain)
    tiled = run(model.with_unet_patch(HyperTile(32, 1, 0, False)))  # 4-token tiles at full resolution
    assert tiled.shape == plain.shape and not torch.allclose(tiled, plain, atol=1e-4)
    assert torch.equal(run(model.with_unet_patch(HyperTile(32, 1, 0, False))), tiled)  # the same run, the same tiles
    assert_untouched(model, before)


def test_hypertile_tiles_attend_only_within_themselves(model: DiffusionModel) -> None:
    layer = self_attention_layers(model.unet)[0]
    hidden = torch.randn(1, 64, layer.to_q.in_features, generator=torch.Generator().manual_seed(0))
    swaps = HyperTile(32, 1, 0, False).attach(model.unet)
    try:
        with unet_step(StepInfo(0.5, torch.tensor([False]), (8, 8))), torch.no_grad():
            tiled = layer.processor(layer, hidden)
            grid = hidden.view(1, 2, 4, 2, 4, -1)  # 2 x 2 tiles of 4 x 4 tokens
            corner = grid[:, 0, :, 0].reshape(1, 16, -1)
            alone = swaps[0].original(layer, corner)
    finally:
        for swap in reversed(swaps):
            swap.remove()
    assert torch.allclose(tiled.view(1, 2, 4, 2, 4, -1)[:, 0, :, 0].reshape(1, 16, -1), alone, atol=1e-5)


def test_token_merging(model: DiffusionModel, plain: torch.Tensor) -> None:
    before = module_state(model)
    assert torch.equal(run(model.with_unet_patch(TokenMerging(0.0))), plain)
    merged = run(model.with_unet_patch(TokenMerging(0.5)))
    assert merged.shape == plain.shape and not torch.allclose(merged, plain, atol=1e-4)
    assert_untouched(model, before)


def test_merge_and_unmerge_round_trip() -> None:
    x = torch.randn(2, 16, 3, generator=torch.Generator().manual_seed(1))
    merge = bipartite_matching(x, 4, 4, 5, torch.Generator().manual_seed(0))
    assert merge.destinations.numel() == 4 and merge.moved.shape == (2, 5)
    merged = merge.merge(x)
    assert merged.shape == (2, 11, 3)  # 16 tokens, 5 merged away
    back = merge.unmerge(merged)
    for b in range(2):
        untouched = merge.sources[merge.kept[b]]
        assert torch.equal(back[b, untouched], x[b, untouched])
        for position, target in zip(merge.moved[b], merge.into[b], strict=True):  # merged tokens share a result
            assert torch.equal(back[b, merge.sources[position]], back[b, merge.destinations[target]])
    nothing = bipartite_matching(x, 4, 4, 0, torch.Generator().manual_seed(0))
    assert torch.equal(nothing.unmerge(nothing.merge(x)), x)


def test_middle_block_identity(model: DiffusionModel, plain: torch.Tensor) -> None:
    layer = middle_self_attention(model.unet)[0]
    hidden = torch.randn(2, 4, layer.to_q.in_features)
    swaps = MidBlockIdentity().attach(model.unet)
    with torch.no_grad():
        out = layer.processor(layer, hidden)
        expected = value_passthrough(layer, hidden)
    for swap in swaps:
        swap.remove()
    assert torch.equal(out, expected)
    assert run(model.with_unet_patch(MidBlockIdentity())).shape == plain.shape


def test_middle_block_patches_need_a_middle_block() -> None:
    with pytest.raises(ValueError, match="middle block"):
        middle_self_attention(torch.nn.Linear(2, 2))


def test_patches_compose_and_come_off_in_order(model: DiffusionModel, plain: torch.Tensor) -> None:
    before = module_state(model)
    stacked = model.with_unet_patch(FreeU(1.0, 1.0, 1.0, 1.0)).with_unet_patch(HyperTile(2048, 1, 1, False))
    stacked = stacked.with_unet_patch(TokenMerging(0.0)).with_unet_patch(HyperTile(2048, 1, 0, True))
    assert torch.allclose(run(stacked), plain, rtol=1e-4, atol=1e-4)  # neutral FreeU rounds through an FFT
    both = run(model.with_unet_patch(HyperTile(32, 1, 0, False)).with_unet_patch(TokenMerging(0.3)))
    assert both.shape == plain.shape and bool(torch.isfinite(both).all())
    assert_untouched(model, before)


def test_attention_recorder_and_blur_mask(model: DiffusionModel) -> None:
    recorder = AttentionRecorder()
    run(model.with_unet_patch(recorder))
    received = recorder.received
    assert received is not None and received.shape == (1, 16)  # the 4 x 4 middle grid of an 8 x 8 latent
    assert received.sum().item() == pytest.approx(16.0, rel=1e-4)  # each query's attention sums to 1
    mask = received_mask(torch.tensor([[2.0, 0.5, 0.9, 0.6]]), (4, 4), 1)
    assert mask[0, 0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(blur_masked(x0, torch.zeros(1, 4), 2.0), x0)  # nothing above the threshold
    blurred = blur_masked(x0, torch.full((1, 4), 2.0), 2.0)
    assert torch.allclose(blurred, gaussian_blur(x0, 9, 2.0)) and blurred.std() < x0.std()


def test_gaussian_blur() -> None:
    flat = torch.full((1, 2, 8, 8), 3.0)
    assert torch.allclose(gaussian_blur(flat, 9, 1.5), flat)
    x = torch.randn(1, 1, 8, 8)
    assert torch.equal(gaussian_blur(x, 9, 0.0), x)
    assert torch.allclose(gaussian_blur(x, 9, 1.0).mean(), x.mean(), atol=0.2)
