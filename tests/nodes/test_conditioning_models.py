"""Conditioning for inpainting and InstructPix2Pix models, area strength and timestep ranges."""

from __future__ import annotations

import pytest
import torch

from tests.nodes.conftest import Run


class PixelMeanVAE:
    """A stand-in VAE whose 'latent' is the 8x8-pooled mean of the pixels, so tests can see what was encoded."""

    def __init__(self) -> None:
        self.encoded: list[torch.Tensor] = []

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        self.encoded.append(pixels)
        return torch.nn.functional.avg_pool2d(pixels.movedim(-1, 1).mean(1, keepdim=True), 8).repeat(1, 4, 1, 1)


COND = [[torch.zeros(1, 2, 4), {"pooled_output": None}]]


def test_inpaint_model_conditioning_greys_the_masked_area(run: Run) -> None:
    vae = PixelMeanVAE()
    pixels = torch.ones(1, 20, 17, 3)  # cropped to 16 x 16
    mask = torch.zeros(1, 20, 17)
    mask[:, :10] = 1
    positive, negative, latent = run(
        "InpaintModelConditioning", positive=COND, negative=COND, vae=vae, pixels=pixels, mask=mask, noise_mask=True
    )
    greyed, original = vae.encoded
    assert greyed.shape == (1, 16, 16, 3) and torch.all(original == 1)
    assert torch.all(greyed[:, :6] == 0.5) and torch.all(greyed[:, 10:] == 1)
    assert torch.equal(positive[0][1]["concat_latent_image"], negative[0][1]["concat_latent_image"])
    assert positive[0][1]["concat_mask"].shape == (1, 1, 16, 16) and COND[0][1] == {"pooled_output": None}
    assert latent["noise_mask"].shape == (1, 1, 16, 16) and latent["samples"].shape == (1, 4, 2, 2)
    _p, _n, plain = run(
        "InpaintModelConditioning", positive=COND, negative=COND, vae=vae, pixels=pixels, mask=mask, noise_mask=False
    )
    assert "noise_mask" not in plain


def test_instruct_pix2pix_conditioning(run: Run) -> None:
    vae = PixelMeanVAE()
    positive, _negative, latent = run(
        "InstructPixToPixConditioning", positive=COND, negative=COND, vae=vae, pixels=torch.rand(2, 16, 24, 3)
    )
    concat = positive[0][1]["concat_latent_image"]
    assert concat.shape == (2, 4, 2, 3) and torch.equal(latent["samples"], torch.zeros_like(concat))
    with pytest.raises(ValueError, match="vae"):
        run("InstructPixToPixConditioning", positive=COND, negative=COND, vae=None, pixels=torch.rand(1, 8, 8, 3))


def test_area_strength_and_timestep_ranges(run: Run) -> None:
    out = run("ConditioningSetAreaStrength", conditioning=COND, strength=2.5)
    assert out[0][1]["strength"] == 2.5 and "strength" not in COND[0][1]
    ranges = run("ConditioningTimestepsRange", start_percent=0.2, end_percent=0.7)
    assert ranges == ((0.2, 0.7), (0.0, 0.2), (0.7, 1.0))
    with pytest.raises(ValueError, match="start_percent"):
        run("ConditioningTimestepsRange", start_percent=0.8, end_percent=0.1)
