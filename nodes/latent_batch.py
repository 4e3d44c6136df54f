"""Latent batches and layout: masked compositing, joining batches, concatenating and cutting along an axis, batch
seed behaviour, and latent operations (functions on the samples tensor) applied directly."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.native import Boolean, Combo, Float, Int, Socket, node
from nodes.resize import gaussian_kernel, paste, repeat_to_batch, upscale
from nodes.shared import MAX_RESOLUTION, Latent

if TYPE_CHECKING:
    import torch

LATENT = Socket("LATENT")
LatentOperation = Callable[..., Any]  # latent=[B, C, H, W] -> tensor of the same shape


@node(category="latent", outputs=["LATENT"])
def LatentCompositeMasked(
    destination: Latent = LATENT,
    source: Latent = LATENT,
    x: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
    y: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
    resize_source: bool = Boolean(False),
    mask: Any = Socket("MASK", optional=True),
) -> Latent:
    """Paste `source` into `destination` at pixel (x, y) (latent cell x // 8), through `mask` when given."""
    dest = destination["samples"]
    return {**destination, "samples": paste(dest, source["samples"], x, y, mask, 8, resize_source)}


@node(category="latent/batch", outputs=["LATENT"], deprecated=True)
def LatentBatch(samples1: Latent = LATENT, samples2: Latent = LATENT) -> Latent:
    """Join two batches; samples2 is resized (bilinear, centre crop) to samples1's size. The batch indices of
    both are kept, so each item keeps its own noise."""
    import torch

    s1, s2 = samples1["samples"], samples2["samples"]
    if s2.shape[1:] != s1.shape[1:]:
        if s2.shape[1] != s1.shape[1]:
            raise ValueError(f"samples2 has {s2.shape[1]} channels and samples1 {s1.shape[1]}: they cannot be batched")
        s2 = upscale(s2, s1.shape[-1], s1.shape[-2], "bilinear", "center")
    index1 = samples1.get("batch_index") or list(range(s1.shape[0]))
    index2 = samples2.get("batch_index") or list(range(s2.shape[0]))
    return {**samples1, "samples": torch.cat((s1, s2)), "batch_index": list(index1) + list(index2)}


def _axis(samples: torch.Tensor, name: str) -> int:
    """x, y and t are the last, second last and third last dimensions (t: frames of a video latent)."""
    offset = {"x": 1, "y": 2, "t": 3}[name.lstrip("-")]
    if offset > samples.ndim - 2:
        raise ValueError(f"dim: this latent of shape {tuple(samples.shape)} has no {name.lstrip('-')} axis")
    return samples.ndim - offset


@node(category="latent/advanced", outputs=["LATENT"])
def LatentConcat(
    samples1: Latent = LATENT,
    samples2: Latent = LATENT,
    dim: str = Combo(("x", "-x", "y", "-y", "t", "-t")),
) -> Latent:
    """Join two latents along an axis; "-" puts samples2 first."""
    import torch

    s1 = samples1["samples"]
    s2 = repeat_to_batch(samples2["samples"], s1.shape[0])
    pair = (s2, s1) if dim.startswith("-") else (s1, s2)
    return {**samples1, "samples": torch.cat(pair, dim=_axis(s1, dim))}


@node(category="latent/advanced", outputs=["LATENT"])
def LatentCut(
    samples: Latent = LATENT,
    dim: str = Combo(("x", "y", "t")),
    index: int = Int(0, min=-MAX_RESOLUTION, max=MAX_RESOLUTION, step=1),
    amount: int = Int(1, min=1, max=MAX_RESOLUTION, step=1),
) -> Latent:
    """`amount` cells along an axis from `index` (negative: from the end), clamped to the latent."""
    s = samples["samples"]
    axis = _axis(s, dim)
    size = s.shape[axis]
    if index >= 0:
        index = min(index, size - 1)
        amount = min(size - index, amount)
    else:
        index = max(index, -size)
        amount = min(-index, amount)
        index += size
    return {**samples, "samples": s.narrow(axis, index, amount)}


@node(category="latent/advanced", outputs=["LATENT"])
def LatentBatchSeedBehavior(
    samples: Latent = LATENT,
    seed_behavior: str = Combo(("random", "fixed"), default="fixed"),
) -> Latent:
    """ "fixed": every item gets the first item's noise; "random": each its own (forgets remembered indices)."""
    out = dict(samples)
    if seed_behavior == "random":
        out.pop("batch_index", None)
    elif seed_behavior == "fixed":
        first = (samples.get("batch_index") or [0])[0]
        out["batch_index"] = [first] * samples["samples"].shape[0]
    else:
        raise ValueError(f"seed_behavior: unknown {seed_behavior!r}; expected 'random' or 'fixed'")
    return out


OPERATIONS = "latent/advanced/operations"


@node(category=OPERATIONS, outputs=["LATENT"], experimental=True)
def LatentApplyOperation(samples: Latent = LATENT, operation: Any = Socket("LATENT_OPERATION")) -> Latent:
    return {**samples, "samples": operation(latent=samples["samples"])}


def _channel_norm(latent: torch.Tensor, eps: float) -> torch.Tensor:
    return (latent.norm(dim=1) + eps)[:, None]


def tonemap_reinhard(multiplier: float) -> LatentOperation:
    """Reinhard tone mapping x / (1 + x) of the per-pixel channel-vector length, scaled so that lengths up to
    mean + 5 std (times `multiplier`) are kept nearly linear; directions are unchanged."""

    def operation(latent: torch.Tensor, **_: Any) -> torch.Tensor:
        magnitude = _channel_norm(latent, 1e-10)
        direction = latent / magnitude
        dims = list(range(1, magnitude.ndim))
        top = (magnitude.std(dim=dims, keepdim=True) * 5 + magnitude.mean(dim=dims, keepdim=True)) * multiplier
        scaled = magnitude / top
        return direction * (scaled / (scaled + 1.0)) * top

    return operation


@node(category=OPERATIONS, outputs=["LATENT_OPERATION"], experimental=True)
def LatentOperationTonemapReinhard(multiplier: float = Float(1.0, min=0.0, max=100.0, step=0.01)) -> Any:
    return tonemap_reinhard(multiplier)


def sharpen_operation(radius: int, sigma: float, alpha: float) -> LatentOperation:
    """Sharpen the directions of the channel vectors with an unsharp-mask kernel, keeping their lengths."""
    import torch.nn.functional as F

    def operation(latent: torch.Tensor, **_: Any) -> torch.Tensor:
        luminance = _channel_norm(latent, 1e-6)
        direction = latent / luminance
        size = 2 * radius + 1
        kernel = gaussian_kernel(size, sigma, latent.device) * (alpha * -10)
        kernel[radius, radius] += 1.0 - kernel.sum()
        channels = latent.shape[1]
        mode = "reflect" if min(latent.shape[-2:]) > radius else "replicate"
        padded = F.pad(direction, (radius, radius, radius, radius), mode=mode)
        weight = kernel.to(latent).expand(channels, 1, size, size)
        return luminance * F.conv2d(padded, weight, groups=channels)

    return operation


@node(category=OPERATIONS, outputs=["LATENT_OPERATION"], experimental=True)
def LatentOperationSharpen(
    sharpen_radius: int = Int(9, min=1, max=31, step=1),
    sigma: float = Float(1.0, min=0.1, max=10.0, step=0.1),
    alpha: float = Float(0.1, min=0.0, max=5.0, step=0.01),
) -> Any:
    return sharpen_operation(sharpen_radius, sigma, alpha)
