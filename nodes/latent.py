"""Latent nodes: empty latents, resizing, arithmetic, batches, transforms, and `.latent` files.

A LATENT is a dict `{"samples": [B, 4, h, w], "noise_mask"?: [B, 1, H, W], "batch_index"?: [int]}`; nodes copy the
dict and replace what they change, so keys added by other nodes pass through. Sizes given in pixels are divided
by 8, the VAE's downscale factor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.context import NodeContext
from engine.environment import NodeEnvironment
from engine.native import Combo, Float, Hidden, Int, Socket, String, node
from nodes.files import OutputWriter, check_input_file, input_fingerprint, list_input_files, resolve_input
from nodes.imageio import text_chunks
from nodes.resize import CROP_MODES, LATENT_METHODS, match_shape, repeat_to_batch, upscale
from nodes.shared import MAX_RESOLUTION, Latent, folders_of

if TYPE_CHECKING:
    import torch

LATENT_EXTENSIONS = frozenset({".latent"})
# SD 1.x latents were once saved unscaled; files without this key hold those and are scaled on load.
FORMAT_VERSION_KEY = "latent_format_version_0"
SD_SCALE_FACTOR = 0.18215


def _with(latent: Latent, **changes: Any) -> Latent:
    return {**latent, **changes}


@node(category="latent", outputs=["LATENT"], display_name="Empty Latent Image")
def EmptyLatentImage(
    width: int = Int(512, min=16, max=MAX_RESOLUTION, step=8),
    height: int = Int(512, min=16, max=MAX_RESOLUTION, step=8),
    batch_size: int = Int(1, min=1, max=4096),
) -> Latent:
    """A batch of zero latents for an image of width x height pixels."""
    import torch

    return {"samples": torch.zeros([batch_size, 4, height // 8, width // 8])}


@node(category="latent", outputs=["LATENT"], display_name="Upscale Latent")
def LatentUpscale(
    samples: Latent = Socket("LATENT"),
    upscale_method: str = Combo(LATENT_METHODS),
    width: int = Int(512, min=0, max=MAX_RESOLUTION, step=8),
    height: int = Int(512, min=0, max=MAX_RESOLUTION, step=8),
    crop: str = Combo(CROP_MODES),
) -> Latent:
    """Resize to width x height pixels; a side of 0 follows the other keeping the aspect ratio (both 0: unchanged)."""
    s = samples["samples"]
    if width == 0 and height == 0:
        return dict(samples)
    if width == 0:
        height = max(64, height)
        width = max(64, round(s.shape[-1] * height / s.shape[-2]))
    elif height == 0:
        width = max(64, width)
        height = max(64, round(s.shape[-2] * width / s.shape[-1]))
    else:
        width, height = max(64, width), max(64, height)
    return _with(samples, samples=upscale(s, width // 8, height // 8, upscale_method, crop))


@node(category="latent", outputs=["LATENT"], display_name="Upscale Latent By")
def LatentUpscaleBy(
    samples: Latent = Socket("LATENT"),
    upscale_method: str = Combo(LATENT_METHODS),
    scale_by: float = Float(1.5, min=0.01, max=8.0, step=0.01),
) -> Latent:
    s = samples["samples"]
    width, height = max(1, round(s.shape[-1] * scale_by)), max(1, round(s.shape[-2] * scale_by))
    return _with(samples, samples=upscale(s, width, height, upscale_method))


@node(category="latent/inpaint", outputs=["LATENT"], display_name="Set Latent Noise Mask")
def SetLatentNoiseMask(samples: Latent = Socket("LATENT"), mask: Any = Socket("MASK")) -> Latent:
    """Only the masked area (1) is re-noised and sampled; the sampler resizes the mask to the latent."""
    return _with(samples, noise_mask=mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])))


@node(category="latent/advanced", outputs=["LATENT"])
def LatentAdd(samples1: Latent = Socket("LATENT"), samples2: Latent = Socket("LATENT")) -> Latent:
    a = samples1["samples"]
    return _with(samples1, samples=a + match_shape(a, samples2["samples"]))


@node(category="latent/advanced", outputs=["LATENT"])
def LatentSubtract(samples1: Latent = Socket("LATENT"), samples2: Latent = Socket("LATENT")) -> Latent:
    a = samples1["samples"]
    return _with(samples1, samples=a - match_shape(a, samples2["samples"]))


@node(category="latent/advanced", outputs=["LATENT"])
def LatentMultiply(
    samples: Latent = Socket("LATENT"), multiplier: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
) -> Latent:
    return _with(samples, samples=samples["samples"] * multiplier)


@node(category="latent/advanced", outputs=["LATENT"])
def LatentInterpolate(
    samples1: Latent = Socket("LATENT"),
    samples2: Latent = Socket("LATENT"),
    ratio: float = Float(1.0, min=0.0, max=1.0, step=0.01),
) -> Latent:
    """Interpolate directions and magnitudes of the per-pixel channel vectors separately (ratio 1 = samples1)."""
    import torch

    a = samples1["samples"]
    b = match_shape(a, samples2["samples"])
    norm_a = a.norm(dim=1, keepdim=True)
    norm_b = b.norm(dim=1, keepdim=True)
    mixed = torch.nan_to_num(a / norm_a) * ratio + torch.nan_to_num(b / norm_b) * (1.0 - ratio)
    direction = torch.nan_to_num(mixed / mixed.norm(dim=1, keepdim=True))
    return _with(samples1, samples=direction * (norm_a * ratio + norm_b * (1.0 - ratio)))


@node(category="_for_testing", outputs=["LATENT"], display_name="Latent Blend")
def LatentBlend(
    samples1: Latent = Socket("LATENT"),
    samples2: Latent = Socket("LATENT"),
    blend_factor: float = Float(0.5, min=0.0, max=1.0, step=0.01),
) -> Latent:
    """samples1 * blend_factor + samples2 * (1 - blend_factor); samples2 is resized (bicubic, centre crop) to fit."""
    a = samples1["samples"]
    b = match_shape(a, samples2["samples"], method="bicubic")
    return _with(samples1, samples=a * blend_factor + b * (1.0 - blend_factor))


@node(category="latent", outputs=["LATENT"], display_name="Latent Composite")
def LatentComposite(
    samples_to: Latent = Socket("LATENT"),
    samples_from: Latent = Socket("LATENT"),
    x: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
    y: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
    feather: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
) -> Latent:
    """Paste samples_from into samples_to at pixel (x, y); `feather` pixels fade in along the edges that lie
    inside samples_to."""
    import torch

    dest = samples_to["samples"].clone()
    x, y, fade = x // 8, y // 8, feather // 8
    src = repeat_to_batch(samples_from["samples"], dest.shape[0])
    src = src[:, :, : max(0, dest.shape[2] - y), : max(0, dest.shape[3] - x)]
    h, w = src.shape[2], src.shape[3]
    if h == 0 or w == 0:
        return _with(samples_to, samples=dest)
    if fade == 0:
        dest[:, :, y : y + h, x : x + w] = src
        return _with(samples_to, samples=dest)
    mask = torch.ones((1, 1, h, w), dtype=dest.dtype, device=dest.device)
    for t in range(fade):
        weight = (t + 1) / fade
        if t < h and y != 0:
            mask[:, :, t, :] *= weight
        if t < h and y + h < dest.shape[2]:
            mask[:, :, h - 1 - t, :] *= weight
        if t < w and x != 0:
            mask[:, :, :, t] *= weight
        if t < w and x + w < dest.shape[3]:
            mask[:, :, :, w - 1 - t] *= weight
    region = dest[:, :, y : y + h, x : x + w]
    dest[:, :, y : y + h, x : x + w] = src * mask + region * (1.0 - mask)
    return _with(samples_to, samples=dest)


@node(category="latent/batch", outputs=["LATENT"], display_name="Latent From Batch")
def LatentFromBatch(
    samples: Latent = Socket("LATENT"),
    batch_index: int = Int(0, min=0, max=63),
    length: int = Int(1, min=1, max=64),
) -> Latent:
    """Items batch_index .. batch_index+length-1 (clamped to the batch); remembers their original indices so the
    sampler draws the same noise for them as for the whole batch."""
    s = samples["samples"]
    start = min(s.shape[0] - 1, batch_index)
    length = min(s.shape[0] - start, length)
    out = _with(samples, samples=s[start : start + length].clone())
    mask = samples.get("noise_mask")
    if mask is not None and mask.shape[0] > 1:
        out["noise_mask"] = repeat_to_batch(mask, s.shape[0])[start : start + length].clone()
    indices = samples.get("batch_index")
    out["batch_index"] = list(indices[start : start + length]) if indices else list(range(start, start + length))
    return out


@node(category="latent/batch", outputs=["LATENT"], display_name="Repeat Latent Batch")
def RepeatLatentBatch(samples: Latent = Socket("LATENT"), amount: int = Int(1, min=1, max=64)) -> Latent:
    s = samples["samples"]
    out = _with(samples, samples=s.repeat((amount, 1, 1, 1)))
    mask = samples.get("noise_mask")
    if mask is not None and mask.shape[0] > 1:
        out["noise_mask"] = repeat_to_batch(mask, s.shape[0]).repeat((amount, 1, 1, 1))
    indices = samples.get("batch_index")
    if indices:
        span = max(indices) - min(indices) + 1
        out["batch_index"] = list(indices) + [i + r * span for r in range(1, amount) for i in indices]
    return out


def _mask_like(latent: Latent, change: Any) -> dict[str, Any]:
    """Apply the same spatial change to the noise mask, when there is one."""
    mask = latent.get("noise_mask")
    return {} if mask is None else {"noise_mask": change(mask)}


@node(category="latent/transform", outputs=["LATENT"], display_name="Crop Latent")
def LatentCrop(
    samples: Latent = Socket("LATENT"),
    width: int = Int(512, min=64, max=MAX_RESOLUTION, step=8),
    height: int = Int(512, min=64, max=MAX_RESOLUTION, step=8),
    x: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
    y: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
) -> Latent:
    """The width x height pixel region at (x, y); the origin is pulled in so at least 64 pixels remain."""
    s = samples["samples"]
    lh, lw = s.shape[-2], s.shape[-1]
    x0, y0 = max(0, min(x // 8, lw - 8)), max(0, min(y // 8, lh - 8))
    x1, y1 = min(lw, x0 + width // 8), min(lh, y0 + height // 8)

    def crop_mask(mask: torch.Tensor) -> torch.Tensor:
        sy, sx = mask.shape[-2] / lh, mask.shape[-1] / lw
        return mask[..., round(y0 * sy) : round(y1 * sy), round(x0 * sx) : round(x1 * sx)]

    return _with(samples, samples=s[:, :, y0:y1, x0:x1], **_mask_like(samples, crop_mask))


FLIP_METHODS = ("x-axis: vertically", "y-axis: horizontally")


@node(category="latent/transform", outputs=["LATENT"], display_name="Flip Latent")
def LatentFlip(samples: Latent = Socket("LATENT"), flip_method: str = Combo(FLIP_METHODS)) -> Latent:
    """Mirror top-bottom (x-axis) or left-right (y-axis)."""
    if flip_method not in FLIP_METHODS:
        raise ValueError(f"unknown flip_method {flip_method!r}; expected one of {FLIP_METHODS}")
    dim = -2 if flip_method.startswith("x") else -1
    return _with(samples, samples=samples["samples"].flip(dim), **_mask_like(samples, lambda m: m.flip(dim)))


ROTATIONS = ("none", "90 degrees", "180 degrees", "270 degrees")


@node(category="latent/transform", outputs=["LATENT"], display_name="Rotate Latent")
def LatentRotate(samples: Latent = Socket("LATENT"), rotation: str = Combo(ROTATIONS)) -> Latent:
    """Rotate clockwise by the chosen angle."""
    if rotation not in ROTATIONS:
        raise ValueError(f"unknown rotation {rotation!r}; expected one of {ROTATIONS}")
    turns = ROTATIONS.index(rotation)
    # Turning from the width axis towards the height axis is clockwise as the image is shown.
    rotate = lambda t: t.rot90(turns, dims=(-1, -2))  # noqa: E731
    return _with(samples, samples=rotate(samples["samples"]), **_mask_like(samples, rotate))


def _latent_files(env: NodeEnvironment | None) -> list[str]:
    return list_input_files(env, LATENT_EXTENSIONS)


@node(category="_for_testing", outputs=[], output_node=True)
def SaveLatent(
    ctx: NodeContext,
    samples: Latent = Socket("LATENT"),
    filename_prefix: str = String("latents/Loom"),
    prompt: Any = Hidden("PROMPT"),
    extra_pnginfo: Any = Hidden("EXTRA_PNGINFO"),
) -> dict[str, Any]:
    """Save to `output/<prefix>_00001_.latent` (safetensors); copy the file to input/ to load it with LoadLatent."""
    from safetensors.torch import save

    tensors = {"latent_tensor": samples["samples"].contiguous(), FORMAT_VERSION_KEY: _empty()}
    data = save(tensors, metadata=text_chunks(prompt, extra_pnginfo) or None)
    writer = OutputWriter(folders_of(ctx.env).output, "output", filename_prefix, prompt=prompt)
    return {"ui": {"latents": [writer.write(data, "latent")]}, "result": ()}


def _empty() -> torch.Tensor:
    import torch

    return torch.tensor([])


def _latent_path(latent: str, env: NodeEnvironment | None) -> Any:
    return resolve_input(folders_of(env), latent)


def _latent_fingerprint(latent: str, env: NodeEnvironment | None) -> str:
    return input_fingerprint(env, latent)


def _latent_validate(latent: str, env: NodeEnvironment | None) -> bool | str:
    return check_input_file(env, latent, "latent")


@node(category="_for_testing", outputs=["LATENT"], fingerprint=_latent_fingerprint, validate=_latent_validate)
def LoadLatent(ctx: NodeContext, latent: str = Combo(_latent_files)) -> Latent:
    """A `.latent` file from the input folder, as SaveLatent writes them."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = _latent_path(latent, ctx.env)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{latent!r} is not a readable .latent (safetensors) file: {exc}") from exc
    if "latent_tensor" not in tensors:
        raise ValueError(f"{latent!r} holds no 'latent_tensor'; found {sorted(tensors)}")
    scale = 1.0 if FORMAT_VERSION_KEY in tensors else 1.0 / SD_SCALE_FACTOR
    return {"samples": tensors["latent_tensor"].float() * scale}
