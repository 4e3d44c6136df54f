"""Mask nodes on small tensors: values, shapes, batches, and the alpha <-> mask conventions."""

from __future__ import annotations

import pytest
import torch

from engine.environment import NodeEnvironment as Env
from nodes.mask import porter_duff
from tests.nodes.conftest import Run


def test_solid_invert_threshold(run: Run) -> None:
    solid = run("SolidMask", value=0.25, width=3, height=2)
    assert solid.shape == (1, 2, 3) and torch.all(solid == 0.25)
    assert torch.allclose(run("InvertMask", mask=solid), torch.full((1, 2, 3), 0.75))
    mask = torch.tensor([[[0.2, 0.5, 0.9]]])
    assert run("ThresholdMask", mask=mask, value=0.5).tolist() == [[[0.0, 0.0, 1.0]]]


def test_crop_mask_cuts_at_the_edges(run: Run) -> None:
    mask = torch.arange(16.0).reshape(4, 4)
    out = run("CropMask", mask=mask, x=2, y=1, width=5, height=2)
    assert out.tolist() == [[[6.0, 7.0], [10.0, 11.0]]]


@pytest.mark.parametrize(
    ("operation", "expected"),
    [("multiply", 0.36), ("add", 1.0), ("subtract", 0.0), ("and", 1.0), ("or", 1.0), ("xor", 0.0)],
)
def test_mask_composite_operations(run: Run, operation: str, expected: float) -> None:
    dest = torch.full((1, 4, 4), 0.6)
    src = torch.full((1, 2, 2), 0.6)
    out = run("MaskComposite", destination=dest, source=src, x=1, y=2, operation=operation)
    assert torch.allclose(out[0, 2:4, 1:3], torch.full((2, 2), expected))
    assert out[0, :2].eq(0.6).all() and out[0, :, 0].eq(0.6).all()  # outside the source: untouched


def test_mask_composite_logic_counts_values_above_a_half() -> None:
    from nodes.mask import MaskComposite

    dest = torch.tensor([[[0.5, 0.6]]])
    out = MaskComposite(destination=dest, source=torch.ones(1, 1, 2), x=0, y=0, operation="and")
    assert out.tolist() == [[[0.0, 1.0]]]


def test_mask_composite_outside_the_destination_changes_nothing(run: Run) -> None:
    dest = torch.rand(1, 3, 3)
    out = run("MaskComposite", destination=dest, source=torch.ones(1, 2, 2), x=5, y=0, operation="add")
    assert torch.equal(out, dest)


def test_feather_mask_ramps_towards_the_edges(run: Run) -> None:
    out = run("FeatherMask", mask=torch.ones(1, 1, 6), left=3, top=0, right=2, bottom=0)
    assert out[0, 0].tolist() == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0, 1.0, 0.5])


def test_grow_mask_dilates_and_erodes(run: Run) -> None:
    dot = torch.zeros(1, 5, 5)
    dot[0, 2, 2] = 1
    cross = run("GrowMask", mask=dot, expand=1, tapered_corners=True)
    assert cross.sum() == 5 and cross[0, 1, 1] == 0 and cross[0, 1, 2] == 1
    square = run("GrowMask", mask=dot, expand=1, tapered_corners=False)
    assert square.sum() == 9
    assert run("GrowMask", mask=square, expand=-1, tapered_corners=False).sum() == 1
    assert torch.equal(run("GrowMask", mask=dot, expand=0, tapered_corners=True), dot)


def test_image_color_to_mask(run: Run) -> None:
    image = torch.zeros(1, 1, 2, 3)
    image[0, 0, 1] = torch.tensor([1.0, 128 / 255, 0.0])
    out = run("ImageColorToMask", image=image, color=0xFF8000)
    assert out.tolist() == [[[0.0, 1.0]]]


def test_split_and_join_alpha_round_trip(run: Run) -> None:
    rgba = torch.rand(2, 3, 4, 4)
    rgb, mask = run("SplitImageWithAlpha", image=rgba)
    assert rgb.shape == (2, 3, 4, 3) and torch.allclose(mask, 1 - rgba[..., 3])
    joined = run("JoinImageWithAlpha", image=rgb, alpha=mask)
    assert torch.allclose(joined, rgba)
    _rgb, opaque = run("SplitImageWithAlpha", image=torch.rand(1, 2, 2, 3))
    assert torch.all(opaque == 0)


def test_join_alpha_resizes_the_mask_and_cycles_batches(run: Run) -> None:
    out = run("JoinImageWithAlpha", image=torch.zeros(2, 4, 4, 3), alpha=torch.zeros(1, 2, 2))
    assert out.shape == (2, 4, 4, 4) and torch.all(out[..., 3] == 1)


def test_porter_duff_src_over_and_xor() -> None:
    src, dst = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    colour, alpha = porter_duff(src, torch.tensor(0.5), dst, torch.tensor(1.0), "SRC_OVER")
    assert alpha == 1.0 and torch.allclose(colour, torch.tensor([0.5, 0.0, 0.5]))
    colour, alpha = porter_duff(src, torch.tensor(1.0), dst, torch.tensor(1.0), "XOR")
    assert alpha == 0.0 and torch.all(colour == 0)
    with pytest.raises(ValueError, match="unknown"):
        porter_duff(src, torch.tensor(1.0), dst, torch.tensor(1.0), "NOPE")


def test_porter_duff_node_uses_masks_as_transparency(run: Run) -> None:
    src = torch.ones(1, 2, 2, 3)
    dst = torch.zeros(1, 2, 2, 3)
    image, mask = run(
        "PorterDuffImageComposite",
        source=src,
        source_alpha=torch.zeros(1, 2, 2),  # opaque
        destination=dst,
        destination_alpha=torch.ones(1, 2, 2),  # transparent
        mode="SRC_OVER",
    )
    assert torch.all(image == 1) and torch.all(mask == 0)


def test_mask_preview_writes_a_temp_image(run: Run, env: Env) -> None:
    out = run("MaskPreview", mask=torch.ones(2, 3), prompt=None, extra_pnginfo=None)
    [saved] = out["ui"]["images"]
    assert saved["type"] == "temp" and (env.folders.temp / saved["filename"]).is_file()
