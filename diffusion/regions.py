"""Where on the latent each conditioning entry acts, and how overlapping predictions are blended.

A conditioning's dict may limit it to an `area` ((h, w, y, x) in latent cells, or ("percentage", h, w, y, x)),
weight it by a `mask` (scaled by `mask_strength`; with `set_area_to_bounds` the area becomes the mask's bounding
box) and by `strength`. The sampler predicts each entry on its region only (the crop of the latent, so an area
prompt is computed at the area's size) and blends: every latent cell gets the weighted mean of the predictions
covering it. An area's weight ramps up over its outer cells where its edge lies inside the frame, so area
predictions fade into their surroundings instead of leaving a seam.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

FEATHER = 8  # most latent cells an area's edge fades over (a quarter of the area's side at most)


@dataclass(frozen=True)
class Region:
    """A crop of the latent (y0:y1, x0:x1) and the per-cell weight [B, 1, y1-y0, x1-x0] of an entry there."""

    y0: int
    y1: int
    x0: int
    x1: int
    weight: torch.Tensor

    @property
    def bounds(self) -> tuple[int, int, int, int]:
        return self.y0, self.y1, self.x0, self.x1

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.y0 : self.y1, self.x0 : self.x1]


def has_regions(options: Sequence[Mapping[str, Any]]) -> bool:
    """True when some entry limits itself to an area or a mask (otherwise the plain strength mean applies)."""
    return any(o.get("area") is not None or o.get("mask") is not None for o in options)


def latent_mask(mask: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    """A MASK ([H, W], [B, H, W] or [B, 1, H, W], any resolution) resized to the latent's grid, [B, 1, h, w]."""
    m = mask.float().to(latent.device)
    while m.ndim < 4:
        m = m.unsqueeze(0) if m.ndim < 3 else m.unsqueeze(1)
    m = F.interpolate(m[:, :1], size=latent.shape[2:], mode="bilinear", align_corners=False).clamp(0, 1)
    if m.shape[0] != latent.shape[0]:
        m = m[:1].repeat(latent.shape[0], 1, 1, 1) if m.shape[0] == 1 else m[: latent.shape[0]]
    return m


def _ramp(length: int, fade_start: bool, fade_end: bool) -> torch.Tensor:
    """1 inside, rising linearly over the first/last `min(FEATHER, length // 4)` cells of a faded edge."""
    ramp = torch.ones(length)
    cells = min(FEATHER, length // 4)
    if cells:
        rise = torch.arange(1, cells + 1, dtype=torch.float32) / (cells + 1)
        if fade_start:
            ramp[:cells] *= rise
        if fade_end:
            ramp[-cells:] *= rise.flip(0)
    return ramp


def _area_bounds(area: Sequence[Any], height: int, width: int) -> tuple[int, int, int, int]:
    if area[0] == "percentage":
        h, w = max(1, round(area[1] * height)), max(1, round(area[2] * width))
        y, x = round(area[3] * height), round(area[4] * width)
    else:
        h, w, y, x = (int(v) for v in area[:4])
    y0, x0 = min(max(0, y), height - 1), min(max(0, x), width - 1)
    return y0, min(height, y0 + max(1, h)), x0, min(width, x0 + max(1, w))


def region(opts: Mapping[str, Any], like: torch.Tensor) -> Region:
    """The region of one entry on the latent `like` ([B, C, h, w])."""
    batch, height, width = like.shape[0], like.shape[2], like.shape[3]
    y0, y1, x0, x1 = 0, height, 0, width
    area = opts.get("area")
    if area is not None:
        y0, y1, x0, x1 = _area_bounds(area, height, width)
    mask = opts.get("mask")
    m = latent_mask(mask, like) if isinstance(mask, torch.Tensor) else None
    if m is not None and opts.get("set_area_to_bounds"):
        nz = torch.nonzero(m.amax(dim=(0, 1)) > 0)
        if len(nz):
            y0, x0 = (int(v) for v in nz.min(0).values)
            y1, x1 = (int(v) + 1 for v in nz.max(0).values)
    weight = torch.full((batch, 1, y1 - y0, x1 - x0), float(opts.get("strength", 1.0)), device=like.device)
    if area is not None:
        fade = _ramp(y1 - y0, y0 > 0, y1 < height)[:, None] * _ramp(x1 - x0, x0 > 0, x1 < width)[None, :]
        weight = weight * fade.to(like.device)
    if m is not None:
        weight = weight * m[..., y0:y1, x0:x1] * float(opts.get("mask_strength", 1.0))
    return Region(y0, y1, x0, x1, weight.to(like.dtype))


def blend(predictions: Sequence[tuple[Region, torch.Tensor]], like: torch.Tensor) -> torch.Tensor:
    """The weighted mean of predictions (each full-size or the size of its region) over the latent `like`.

    Cells no entry covers come out as 0, as in the ecosystem's tools (workflows cover the frame with one
    full-size entry under the regional ones)."""
    total = torch.zeros_like(like)
    weights = torch.zeros(like.shape[0], 1, *like.shape[2:], device=like.device, dtype=like.dtype)
    for reg, pred in predictions:
        part = reg.crop(pred) if pred.shape[-2:] == like.shape[-2:] else pred
        total[..., reg.y0 : reg.y1, reg.x0 : reg.x1] += part * reg.weight
        weights[..., reg.y0 : reg.y1, reg.x0 : reg.x1] += reg.weight
    return total / weights.clamp_min(1e-8)
