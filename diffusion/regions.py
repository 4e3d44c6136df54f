"""Where on the latent each conditioning entry acts, and how overlapping predictions are blended.

A conditioning's dict may limit it to an `area` ((h, w, y, x) in latent units, or ("percentage", h, w, y, x)),
weight it by a `mask` (scaled by `mask_strength`; with `set_area_to_bounds` the area becomes the mask's bounding
box) and by `strength`. The sampler predicts each entry on its region (the crop of the latent) and blends: every
latent pixel gets the weighted mean of the predictions covering it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Region:
    """A crop of the latent (y0:y1, x0:x1) and the per-pixel weight [B, 1, y1-y0, x1-x0] of an entry there."""

    y0: int
    y1: int
    x0: int
    x1: int
    weight: torch.Tensor

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.y0 : self.y1, self.x0 : self.x1]


def has_regions(options: Sequence[Mapping[str, Any]]) -> bool:
    """True when some entry limits itself to an area or a mask (otherwise the plain strength mean applies)."""
    return any(o.get("area") is not None or o.get("mask") is not None for o in options)


def region(opts: Mapping[str, Any], batch: int, height: int, width: int, device: torch.device) -> Region:
    """The region of one entry on a latent of [batch, *, height, width]."""
    y0, y1, x0, x1 = 0, height, 0, width
    area = opts.get("area")
    if area is not None:
        if area[0] == "percentage":
            h, w = max(1, round(area[1] * height)), max(1, round(area[2] * width))
            y, x = round(area[3] * height), round(area[4] * width)
        else:
            h, w, y, x = (int(v) for v in area)
        y0, x0 = min(max(0, y), height - 1), min(max(0, x), width - 1)
        y1, x1 = min(height, y0 + max(1, h)), min(width, x0 + max(1, w))
    weight = torch.full((batch, 1, y1 - y0, x1 - x0), float(opts.get("strength", 1.0)), device=device)
    mask = opts.get("mask")
    if mask is not None:
        m = mask.float().to(device)
        m = m.reshape(-1, 1, *m.shape[-2:])
        m = F.interpolate(m, size=(height, width), mode="bilinear", align_corners=False)
        m = m if m.shape[0] == batch else m[:1].expand(batch, -1, -1, -1)
        if opts.get("set_area_to_bounds"):
            nz = torch.nonzero(m.amax(dim=(0, 1)) > 0)
            if len(nz):
                y0, x0 = (int(v) for v in nz.min(0).values)
                y1, x1 = (int(v) + 1 for v in nz.max(0).values)
                weight = weight.new_full((batch, 1, y1 - y0, x1 - x0), float(opts.get("strength", 1.0)))
        weight = weight * m[..., y0:y1, x0:x1] * float(opts.get("mask_strength", 1.0))
    return Region(y0, y1, x0, x1, weight)


def blend(predictions: Sequence[tuple[Region, torch.Tensor]], like: torch.Tensor) -> torch.Tensor:
    """The weighted mean of predictions (each full-size or the size of its region) over the latent `like`.

    Pixels no entry covers come out as 0, as in the ecosystem's tools (workflows cover the frame with one
    full-size entry under the regional ones)."""
    total = torch.zeros_like(like)
    weights = torch.zeros(like.shape[0], 1, *like.shape[2:], device=like.device, dtype=like.dtype)
    for reg, pred in predictions:
        part = reg.crop(pred) if pred.shape[-2:] == like.shape[-2:] else pred
        w = reg.weight.to(like.dtype)
        total[..., reg.y0 : reg.y1, reg.x0 : reg.x1] += part * w
        weights[..., reg.y0 : reg.y1, reg.x0 : reg.x1] += w
    return total / weights.clamp_min(1e-8)


def weighted_mean(
    predictions: Sequence[torch.Tensor], options: Sequence[Mapping[str, Any]], like: torch.Tensor
) -> torch.Tensor:
    """Blend full-size predictions of conditioning entries by their regions (area, mask, strength)."""
    batch, height, width = like.shape[0], like.shape[2], like.shape[3]
    regions = [region(o, batch, height, width, like.device) for o in options]
    return blend(list(zip(regions, predictions, strict=True)), like)
