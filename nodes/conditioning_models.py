"""Conditioning for models that take an image alongside the noise: inpainting models (the masked image and the
mask) and InstructPix2Pix (the source image); plus the area strength and timestep-range helpers.

The image goes into each conditioning as `concat_latent_image` (and `concat_mask`), the keys models trained with
extra input channels read; for other models they are ignored and the LATENT output serves as with VAEEncode.
"""

from __future__ import annotations

from typing import Any

from engine.native import Boolean, Float, Out, Socket, node
from nodes.shared import with_values

COND = Socket("CONDITIONING")
COND_OUTS = [Out("CONDITIONING", "positive"), Out("CONDITIONING", "negative")]


def _crop8(images: Any) -> Any:
    """The centred part of the images whose sides are multiples of 8 pixels."""
    h, w = images.shape[1] // 8 * 8, images.shape[2] // 8 * 8
    top, left = (images.shape[1] % 8) // 2, (images.shape[2] % 8) // 2
    return images[:, top : top + h, left : left + w]


def _vae(vae: Any) -> Any:
    if vae is None:
        raise ValueError("vae: the checkpoint has no VAE; load one with VAELoader")
    return vae


@node(category="conditioning/inpaint", outputs=[*COND_OUTS, Out("LATENT", "latent")])
def InpaintModelConditioning(
    positive: Any = COND,
    negative: Any = COND,
    vae: Any = Socket("VAE"),
    pixels: Any = Socket("IMAGE"),
    mask: Any = Socket("MASK"),
    noise_mask: bool = Boolean(
        True, tooltip="Add a noise mask to the latent so sampling only changes the masked area."
    ),
) -> tuple[Any, Any, dict[str, Any]]:
    """Encode the image with the masked area greyed out for the conditioning (with the mask), and the untouched
    image as the latent to sample from."""
    import torch.nn.functional as F

    v = _vae(vae)
    m = mask.float().reshape(-1, 1, mask.shape[-2], mask.shape[-1])
    m = F.interpolate(m, size=(pixels.shape[1], pixels.shape[2]), mode="bilinear")
    original = _crop8(pixels)
    m = _crop8(m.movedim(1, -1)).movedim(-1, 1)
    keep = (1.0 - m.round()).movedim(1, -1)
    if keep.shape[0] != original.shape[0]:
        keep = keep[:1].expand(original.shape[0], -1, -1, -1)
    greyed = (original[..., :3] - 0.5) * keep + 0.5
    concat = v.encode(greyed)
    latent: dict[str, Any] = {"samples": v.encode(original)}
    if noise_mask:
        latent["noise_mask"] = m
    values = {"concat_latent_image": concat, "concat_mask": m}
    return with_values(positive, **values), with_values(negative, **values), latent


@node(category="conditioning/instructpix2pix", outputs=[*COND_OUTS, Out("LATENT", "latent")])
def InstructPixToPixConditioning(
    positive: Any = COND, negative: Any = COND, vae: Any = Socket("VAE"), pixels: Any = Socket("IMAGE")
) -> tuple[Any, Any, dict[str, Any]]:
    """The source image, encoded, for an InstructPix2Pix model's conditioning; the latent to sample from is empty
    (zeros) in the image's size."""
    import torch

    concat = _vae(vae).encode(_crop8(pixels))
    return (
        with_values(positive, concat_latent_image=concat),
        with_values(negative, concat_latent_image=concat),
        {"samples": torch.zeros_like(concat)},
    )


@node(category="conditioning", outputs=["CONDITIONING"])
def ConditioningSetAreaStrength(
    conditioning: Any = COND, strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
) -> Any:
    """Set how much this conditioning weighs against others where their areas overlap."""
    return with_values(conditioning, strength=strength)


RANGE = {"min": 0.0, "max": 1.0, "step": 0.001}


@node(
    category="advanced/hooks",
    outputs=[Out("TIMESTEPS_RANGE"), Out("TIMESTEPS_RANGE", "BEFORE_RANGE"), Out("TIMESTEPS_RANGE", "AFTER_RANGE")],
    display_name="Timesteps Range",
    experimental=True,
)
def ConditioningTimestepsRange(
    start_percent: float = Float(0.0, **RANGE), end_percent: float = Float(1.0, **RANGE)
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
    """A span of the sampling schedule (fractions from 0 = start), and the spans before and after it."""
    if start_percent > end_percent:
        raise ValueError(f"start_percent {start_percent} is after end_percent {end_percent}")
    return (start_percent, end_percent), (0.0, start_percent), (end_percent, 1.0)
