"""Image geometry and batch nodes on small tensors."""

from __future__ import annotations

import pytest
import torch

from tests.nodes.conftest import Run


def grid(b: int = 1, h: int = 2, w: int = 3, c: int = 3) -> torch.Tensor:
    return torch.arange(b * h * w * c, dtype=torch.float32).reshape(b, h, w, c) / (b * h * w * c)


def test_empty_image_colour(run: Run) -> None:
    out = run("EmptyImage", width=3, height=2, batch_size=2, color=0xFF0080)
    assert out.shape == (2, 2, 3, 3)
    assert out[1, 1, 2].tolist() == pytest.approx([1.0, 0.0, 128 / 255])


def test_get_image_size(run: Run) -> None:
    out = run("GetImageSize", image=grid(b=4, h=5, w=7), unique_id="3")
    assert out["result"] == (7, 5, 4) and "width: 7" in out["ui"]["text"][0]


def test_image_composite_masked_pastes_through_the_mask(run: Run) -> None:
    dest = torch.zeros(1, 4, 4, 3)
    src = torch.ones(1, 2, 2, 3)
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    out = run("ImageCompositeMasked", destination=dest, source=src, x=1, y=2, resize_source=False, mask=mask)
    assert out[0, 2:4, 1].eq(1).all() and out[0, 2:4, 2].eq(0).all() and out.sum() == 6
    plain = run("ImageCompositeMasked", destination=dest, source=src, x=3, y=3, resize_source=False, mask=None)
    assert plain.sum() == 3  # only one source pixel lands inside
    resized = run("ImageCompositeMasked", destination=dest, source=src, x=0, y=0, resize_source=True, mask=None)
    assert resized.eq(1).all()


def test_image_composite_masked_gives_rgb_an_opaque_alpha(run: Run) -> None:
    out = run(
        "ImageCompositeMasked",
        destination=torch.zeros(1, 2, 2, 4),
        source=torch.ones(1, 1, 1, 3),
        x=0,
        y=0,
        resize_source=False,
        mask=None,
    )
    assert out.shape == (1, 2, 2, 4) and out[0, 0, 0].tolist() == [1, 1, 1, 1]


def test_pad_for_outpaint_grows_and_feathers(run: Run) -> None:
    image = torch.ones(1, 10, 10, 3)
    out, mask = run("ImagePadForOutpaint", image=image, left=2, top=0, right=0, bottom=3, feathering=2)
    assert out.shape == (1, 13, 12, 3) and mask.shape == (1, 13, 12)
    assert out[0, 0, 0, 0] == 0.5 and out[0, 0, 2, 0] == 1.0
    assert mask[0, 0, 0] == 1 and mask[0, 12, 5] == 1  # new area
    assert mask[0, 0, 2] == 1.0  # first original column next to the padding: (2 - 0) / 2 squared
    assert mask[0, 0, 3] == 0.25 and mask[0, 0, 4] == 0  # fades in quadratically
    assert mask[0, 0, 11] == 0  # the unpadded right edge is not feathered
    _out, hard = run("ImagePadForOutpaint", image=image, left=2, top=0, right=0, bottom=0, feathering=0)
    assert hard[0, :, 2:].eq(0).all()


def test_flip_and_rotate(run: Run) -> None:
    image = grid()
    assert torch.equal(run("ImageFlip", image=image, flip_method="x-axis: vertically"), image.flip(1))
    assert torch.equal(run("ImageFlip", image=image, flip_method="y-axis: horizontally"), image.flip(2))
    turned = run("ImageRotate", image=image, rotation="90 degrees")
    assert turned.shape == (1, 3, 2, 3)
    assert torch.equal(turned[0, 0, 1], image[0, 0, 0])  # clockwise: top-left goes to top-right
    assert torch.equal(run("ImageRotate", image=image, rotation="none"), image)
    with pytest.raises(ValueError, match="rotation"):
        run("ImageRotate", image=image, rotation="45 degrees")


def test_stitch_side_by_side_with_spacing(run: Run) -> None:
    a, b = torch.zeros(1, 4, 4, 3), torch.ones(1, 2, 2, 3)
    out = run(
        "ImageStitch",
        image1=a,
        direction="right",
        match_image_size=True,
        spacing_width=2,
        spacing_color="red",
        image2=b,
    )
    assert out.shape == (1, 4, 10, 3)
    assert out[0, 0, 4].tolist() == [1.0, 0.0, 0.0]  # the spacer
    assert out[0, :, 6:].min() > 0.9  # image2 resized to 4x4
    up = run(
        "ImageStitch",
        image1=a,
        direction="up",
        match_image_size=False,
        spacing_width=0,
        spacing_color="white",
        image2=b,
    )
    assert up.shape == (1, 6, 4, 3) and up[0, 0, 0, 0] == 1.0 and up[0, 0, 1, 0] == 1.0  # centred, white pad
    assert torch.equal(
        run(
            "ImageStitch",
            image1=a,
            direction="right",
            match_image_size=True,
            spacing_width=0,
            spacing_color="white",
            image2=None,
        ),
        a,
    )


def test_stitch_repeats_the_last_image_of_the_shorter_batch(run: Run) -> None:
    out = run(
        "ImageStitch",
        image1=torch.zeros(3, 2, 2, 3),
        direction="down",
        match_image_size=True,
        spacing_width=0,
        spacing_color="white",
        image2=torch.ones(1, 2, 2, 3),
    )
    assert out.shape == (3, 4, 2, 3) and out[2, 3].eq(1).all()


def test_resize_and_pad_fits_and_centres(run: Run) -> None:
    out = run(
        "ResizeAndPadImage",
        image=torch.zeros(1, 2, 4, 3),
        target_width=8,
        target_height=8,
        padding_color="white",
        interpolation="nearest-exact",
    )
    assert out.shape == (1, 8, 8, 3)
    assert out[0, 0].eq(1).all() and out[0, 3].eq(0).all() and out[0, 7].eq(1).all()


def test_scale_to_max_dimension(run: Run) -> None:
    assert run("ImageScaleToMaxDimension", image=grid(h=2, w=4), upscale_method="area", largest_size=8).shape == (
        1,
        4,
        8,
        3,
    )
    assert run("ImageScaleToMaxDimension", image=grid(h=4, w=2), upscale_method="bilinear", largest_size=8).shape == (
        1,
        8,
        4,
        3,
    )
    with pytest.raises(ValueError, match="largest_size"):
        run("ImageScaleToMaxDimension", image=grid(), upscale_method="area", largest_size=0)


def test_batch_picks_and_repeats(run: Run) -> None:
    images = grid(b=4)
    assert torch.equal(run("ImageFromBatch", image=images, batch_index=2, length=5), images[2:])
    assert torch.equal(run("ImageFromBatch", image=images, batch_index=9, length=1), images[3:])
    assert run("RepeatImageBatch", image=images[:1], amount=3).shape == (3, 2, 3, 3)


def test_add_noise_is_seeded_and_clamped(run: Run) -> None:
    image = torch.full((1, 4, 4, 3), 0.5)
    a = run("ImageAddNoise", image=image, seed=7, strength=0.5)
    assert torch.equal(a, run("ImageAddNoise", image=image, seed=7, strength=0.5))
    assert not torch.equal(a, run("ImageAddNoise", image=image, seed=8, strength=0.5))
    assert a.min() >= 0 and a.max() <= 1 and not torch.equal(a, image)
    assert torch.equal(run("ImageAddNoise", image=image, seed=7, strength=0.0), image)
