"""Cheap live previews: project a latent to RGB with a fixed linear map and encode it as a small JPEG."""

from __future__ import annotations

import io
from collections.abc import Sequence

import torch


def latent_to_rgb(
    latent: torch.Tensor, factors: Sequence[Sequence[float]], bias: Sequence[float] = (0.0, 0.0, 0.0)
) -> torch.Tensor:
    """[C, h, w] latent -> [h, w, 3] uint8 via a per-family C x 3 matrix (no VAE call)."""
    f = torch.tensor(factors, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latent[: f.shape[0]].float().cpu(), f) + torch.tensor(bias)
    return ((rgb + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8)


def jpeg_preview(
    latent: torch.Tensor, factors: Sequence[Sequence[float]], bias: Sequence[float], max_side: int = 512
) -> bytes:
    from PIL import Image

    image = Image.fromarray(latent_to_rgb(latent, factors, bias).numpy())
    scale = max(1, min(8, max_side // max(image.size)))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=80)
    return buf.getvalue()
