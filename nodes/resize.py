"""Resizing, compositing, filter kernels and batch helpers shared by the latent, image and mask nodes (tensors in
[B, C, H, W] unless said otherwise).

Torch is imported inside the functions so that importing the node modules stays cheap at server start.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

LATENT_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "bislerp")
IMAGE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
CROP_MODES = ("disabled", "center")


def center_crop_to_aspect(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Crop the last two dimensions symmetrically so they have the aspect ratio of `width` x `height`."""
    old_h, old_w = samples.shape[-2], samples.shape[-1]
    old_aspect, new_aspect = old_w / old_h, width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
    return samples.narrow(-2, y, old_h - 2 * y).narrow(-1, x, old_w - 2 * x)


def upscale(samples: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    """Resize [B, C, H, W] to `height` x `width` with one of LATENT_METHODS or IMAGE_METHODS."""
    import torch.nn.functional as F

    if width < 1 or height < 1:
        raise ValueError(f"cannot resize to {width}x{height}: both sides must be at least 1")
    if crop == "center":
        samples = center_crop_to_aspect(samples, width, height)
    elif crop != "disabled":
        raise ValueError(f"unknown crop mode {crop!r}; expected one of {CROP_MODES}")
    if method == "bislerp":
        return bislerp(samples, width, height)
    if method == "lanczos":
        return lanczos(samples, width, height)
    if method not in ("nearest-exact", "bilinear", "area", "bicubic"):
        raise ValueError(f"unknown resize method {method!r}")
    dtype = samples.dtype
    # Half precision is not implemented for every mode on the CPU; resize in float32 and go back.
    out = F.interpolate(samples.float(), size=(height, width), mode=method)
    return out.to(dtype)


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between vectors along dim 1 (channels), magnitudes interpolated linearly."""
    import torch

    norm_a = a.norm(dim=1, keepdim=True)
    norm_b = b.norm(dim=1, keepdim=True)
    unit_a = a / norm_a.clamp_min(1e-12)
    unit_b = b / norm_b.clamp_min(1e-12)
    dot = (unit_a * unit_b).sum(dim=1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    near = sin_omega.abs() < 1e-4
    safe = torch.where(near, torch.ones_like(sin_omega), sin_omega)
    wa = torch.where(near, 1.0 - t, torch.sin((1.0 - t) * omega) / safe)
    wb = torch.where(near, t, torch.sin(t * omega) / safe)
    direction = wa * unit_a + wb * unit_b
    return direction * (norm_a * (1.0 - t) + norm_b * t)


def _source_coords(size_in: int, size_out: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """For each output index: the two neighbouring source indices and the weight of the second (half-pixel centres)."""
    import torch

    pos = (torch.arange(size_out, device=device, dtype=torch.float32) + 0.5) * (size_in / size_out) - 0.5
    pos = pos.clamp(0, size_in - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=size_in - 1)
    return lo, hi, pos - lo.float()


def bislerp(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Bilinear resize where each 1-D blend is a slerp of the channel vectors: keeps latent magnitudes intact."""
    dtype = samples.dtype
    x = samples.float()
    lo, hi, t = _source_coords(x.shape[-1], width, x.device)
    x = _slerp(x[..., lo], x[..., hi], t.view(1, 1, 1, -1))
    lo, hi, t = _source_coords(x.shape[-2], height, x.device)
    x = _slerp(x[..., lo, :], x[..., hi, :], t.view(1, 1, -1, 1))
    return x.to(dtype)


def lanczos(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Lanczos resize through Pillow, one float32 plane at a time (no 8-bit rounding)."""
    import numpy as np
    import torch
    from PIL import Image

    planes = samples.detach().float().cpu().numpy()
    out = np.empty((*planes.shape[:2], height, width), dtype=np.float32)
    for b in range(planes.shape[0]):
        for c in range(planes.shape[1]):
            plane = Image.fromarray(np.ascontiguousarray(planes[b, c]), mode="F")
            out[b, c] = np.asarray(plane.resize((width, height), Image.Resampling.LANCZOS))
    return torch.from_numpy(out).to(device=samples.device, dtype=samples.dtype)


def upscale_image(image: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    """`upscale` for IMAGE tensors ([B, H, W, C]); values stay within 0..1."""
    out = upscale(image.movedim(-1, 1), width, height, method, crop).movedim(1, -1)
    return out.clamp(0.0, 1.0) if method in ("bicubic", "lanczos") else out


def repeat_to_batch(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    """Cut or cycle the first dimension to exactly `batch` items."""
    if tensor.shape[0] > batch:
        return tensor[:batch]
    if tensor.shape[0] < batch:
        reps = math.ceil(batch / tensor.shape[0])
        return tensor.repeat(reps, *([1] * (tensor.dim() - 1)))[:batch]
    return tensor


def match_shape(target: torch.Tensor, other: torch.Tensor, method: str = "bilinear") -> torch.Tensor:
    """`other` resized (centre crop) and re-batched to the shape of `target`, so the two can be combined."""
    if other.dim() != target.dim() or other.shape[1] != target.shape[1]:
        raise ValueError(f"cannot combine shapes {tuple(target.shape)} and {tuple(other.shape)}: channels differ")
    if other.shape[1:] != target.shape[1:]:
        other = upscale(other, target.shape[-1], target.shape[-2], method, "center")
    return repeat_to_batch(other, target.shape[0])


def paste(
    destination: torch.Tensor,
    source: torch.Tensor,
    x: int,
    y: int,
    mask: torch.Tensor | None,
    unit: int,
    resize_source: bool,
) -> torch.Tensor:
    """Blend `source` into a copy of `destination` ([B, C, H, W]) at (x, y) given in units of 1/`unit` of a cell
    (8 for latents, 1 for pixels), weighted by `mask` (resized to the source; absent: 1)."""
    import torch

    out = destination.clone()
    src = source.to(out)
    if resize_source:
        src = upscale(src, out.shape[3], out.shape[2], "bilinear")
    src = repeat_to_batch(src, out.shape[0])
    left = max(-src.shape[3], min(x // unit, out.shape[3]))
    top = max(-src.shape[2], min(y // unit, out.shape[2]))
    if mask is None:
        weight = torch.ones_like(src)
    else:
        m = mask.to(out).reshape((-1, 1, mask.shape[-2], mask.shape[-1]))
        weight = repeat_to_batch(upscale(m, src.shape[3], src.shape[2], "bilinear"), src.shape[0])
    # the part of the source that lands inside the destination
    sy0, sx0 = max(0, -top), max(0, -left)
    dy0, dx0 = max(0, top), max(0, left)
    h = min(src.shape[2] - sy0, out.shape[2] - dy0)
    w = min(src.shape[3] - sx0, out.shape[3] - dx0)
    if h <= 0 or w <= 0:
        return out
    s = src[:, :, sy0 : sy0 + h, sx0 : sx0 + w]
    m = weight[:, :, sy0 : sy0 + h, sx0 : sx0 + w]
    region = out[:, :, dy0 : dy0 + h, dx0 : dx0 + w]
    out[:, :, dy0 : dy0 + h, dx0 : dx0 + w] = s * m + region * (1 - m)
    return out


def match_channels(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Give the image with fewer channels an opaque alpha (ones), so RGB and RGBA images can be combined."""
    import torch

    def pad(image: torch.Tensor, channels: int) -> torch.Tensor:
        extra = torch.ones(*image.shape[:-1], channels - image.shape[-1], dtype=image.dtype, device=image.device)
        return torch.cat((image, extra), dim=-1)

    channels = max(a.shape[-1], b.shape[-1])
    return (pad(a, channels) if a.shape[-1] < channels else a), (pad(b, channels) if b.shape[-1] < channels else b)


def gaussian_kernel(size: int, sigma: float, device: Any = None) -> torch.Tensor:
    """A size x size Gaussian over the grid [-1, 1]^2 (so `sigma` is relative to the radius), summing to 1."""
    import torch

    axis = torch.linspace(-1, 1, size, device=device)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    kernel = torch.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    return kernel / kernel.sum()
