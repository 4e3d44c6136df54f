"""Post-processing nodes on small tensors: blend modes, blur, sharpen, quantise, morphology, YUV."""

from __future__ import annotations

import pytest
import torch

from nodes.image_filters import bayer_matrix
from tests.nodes.conftest import Run


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("normal", 0.8), ("multiply", 0.16), ("screen", 0.84), ("overlay", 0.32), ("difference", 0.0)],
)
def test_blend_modes(run: Run, mode: str, expected: float) -> None:
    a, b = torch.full((1, 2, 2, 3), 0.2), torch.full((1, 2, 2, 3), 0.8)
    out = run("ImageBlend", image1=a, image2=b, blend_factor=1.0, blend_mode=mode)
    assert torch.allclose(out, torch.full_like(a, expected))
    half = run("ImageBlend", image1=a, image2=b, blend_factor=0.5, blend_mode="normal")
    assert torch.allclose(half, torch.full_like(a, 0.5))


def test_blend_resizes_image2_and_matches_channels(run: Run) -> None:
    out = run(
        "ImageBlend",
        image1=torch.zeros(1, 4, 4, 4),
        image2=torch.ones(1, 2, 2, 3),
        blend_factor=1.0,
        blend_mode="normal",
    )
    assert out.shape == (1, 4, 4, 4) and torch.allclose(out, torch.ones(1, 4, 4, 4))


def test_blur_keeps_flat_images_and_spreads_a_dot(run: Run) -> None:
    flat = torch.full((1, 5, 5, 3), 0.3)
    assert torch.allclose(run("ImageBlur", image=flat, blur_radius=2, sigma=1.0), flat)
    dot = torch.zeros(1, 5, 5, 1)
    dot[0, 2, 2] = 1
    out = run("ImageBlur", image=dot, blur_radius=1, sigma=1.0)
    assert out[0, 2, 2, 0] < 1 and out[0, 1, 2, 0] > 0 and out.sum() == pytest.approx(1.0, abs=1e-5)
    assert run("ImageBlur", image=torch.rand(1, 1, 1, 3), blur_radius=3, sigma=1.0).shape == (1, 1, 1, 3)


def test_sharpen_raises_contrast_at_an_edge(run: Run) -> None:
    image = torch.zeros(1, 4, 6, 3)
    image[:, :, 3:] = 0.5
    out = run("ImageSharpen", image=image, sharpen_radius=1, sigma=1.0, alpha=1.0)
    assert out[0, 0, 3, 0] > 0.5 and out[0, 0, 2, 0] == 0  # overshoot on the bright side, clamped on the dark
    flat = torch.full((1, 3, 3, 3), 0.4)
    assert torch.allclose(run("ImageSharpen", image=flat, sharpen_radius=1, sigma=1.0, alpha=2.0), flat, atol=1e-6)


@pytest.mark.parametrize("dither", ["none", "floyd-steinberg", "bayer-4"])
def test_quantize_limits_the_palette(run: Run, dither: str) -> None:
    image = torch.rand(1, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    out = run("ImageQuantize", image=image, colors=4, dither=dither)
    assert out.shape == image.shape
    assert len({tuple(p) for p in out.reshape(-1, 3).tolist()}) <= 4


def test_bayer_matrix_is_a_permutation_of_levels() -> None:
    m = bayer_matrix(4)
    assert m.shape == (4, 4) and sorted((m * 16).flatten().tolist()) == list(range(16))


def test_morphology_operations(run: Run) -> None:
    dot = torch.zeros(1, 5, 5, 1)
    dot[0, 2, 2] = 1
    dilated = run("Morphology", image=dot, operation="dilate", kernel_size=3)
    assert dilated.sum() == 9
    assert run("Morphology", image=dilated, operation="erode", kernel_size=3).sum() == 1
    assert run("Morphology", image=dot, operation="open", kernel_size=3).sum() == 0
    assert run("Morphology", image=dot, operation="top_hat", kernel_size=3).sum() == 1
    assert run("Morphology", image=dot, operation="gradient", kernel_size=3).sum() == 9
    full = torch.ones(1, 3, 3, 1)
    assert run("Morphology", image=full, operation="erode", kernel_size=3).eq(1).all()  # borders do not erode
    with pytest.raises(ValueError, match="operation"):
        run("Morphology", image=dot, operation="melt", kernel_size=3)


def test_yuv_round_trip_and_grey_values(run: Run) -> None:
    image = torch.rand(2, 3, 3, 3, generator=torch.Generator().manual_seed(1))
    y, u, v = run("ImageRGBToYUV", image=image)
    assert y.shape == image.shape and torch.equal(y[..., 0], y[..., 2])
    assert torch.allclose(run("ImageYUVToRGB", Y=y, U=u, V=v), image, atol=1e-5)
    white_y, white_u, white_v = run("ImageRGBToYUV", image=torch.ones(1, 1, 1, 3))
    assert white_y.flatten()[0] == pytest.approx(1.0) and white_u.flatten()[0] == pytest.approx(0.5)
    assert white_v.flatten()[0] == pytest.approx(0.5)
