"""Mask nodes: solid, invert, grow, feather, threshold, crop, composite, colour-keyed masks, previews, and alpha
channels split from or joined to images (with Porter-Duff compositing).

A MASK is float [B, H, W] (a single [H, W] is accepted and treated as a batch of one); in alpha terms 1 means
transparent, as LoadImage produces them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.context import NodeContext
from engine.native import Boolean, Combo, Float, Hidden, Int, Out, Socket, node
from nodes.files import preview_images
from nodes.resize import repeat_to_batch, upscale
from nodes.shared import MAX_RESOLUTION

if TYPE_CHECKING:
    import torch

MASK = Socket("MASK")
IMAGE = Socket("IMAGE")
POSITION = {"min": 0, "max": MAX_RESOLUTION, "step": 1}


def as_batch(mask: torch.Tensor) -> torch.Tensor:
    """[B, H, W] whatever the mask's leading dimensions."""
    return mask.reshape((-1, mask.shape[-2], mask.shape[-1]))


@node(category="mask", outputs=["MASK"])
def SolidMask(
    value: float = Float(1.0, min=0.0, max=1.0, step=0.01),
    width: int = Int(512, min=1, max=MAX_RESOLUTION, step=1),
    height: int = Int(512, min=1, max=MAX_RESOLUTION, step=1),
) -> Any:
    import torch

    return torch.full((1, height, width), value, dtype=torch.float32)


@node(category="mask", outputs=["MASK"])
def InvertMask(mask: Any = MASK) -> Any:
    return 1.0 - mask


@node(category="mask", outputs=["MASK"])
def CropMask(
    mask: Any = MASK,
    x: int = Int(0, **POSITION),
    y: int = Int(0, **POSITION),
    width: int = Int(512, min=1, max=MAX_RESOLUTION, step=1),
    height: int = Int(512, min=1, max=MAX_RESOLUTION, step=1),
) -> Any:
    """The width x height region at (x, y), cut short at the mask's edges."""
    return as_batch(mask)[:, y : y + height, x : x + width]


MASK_OPERATIONS = ("multiply", "add", "subtract", "and", "or", "xor")


@node(category="mask", outputs=["MASK"])
def MaskComposite(
    destination: Any = MASK,
    source: Any = MASK,
    x: int = Int(0, **POSITION),
    y: int = Int(0, **POSITION),
    operation: str = Combo(MASK_OPERATIONS),
) -> Any:
    """Combine `source`, placed at (x, y), with `destination` where they overlap; the result is clamped to 0..1.
    The logical operations treat values above 0.5 as set."""
    import torch

    dst, src = as_batch(destination), as_batch(source)
    batch = max(dst.shape[0], src.shape[0])
    out, src = repeat_to_batch(dst, batch).clone(), repeat_to_batch(src, batch)
    bottom, right = min(y + src.shape[-2], out.shape[-2]), min(x + src.shape[-1], out.shape[-1])
    if bottom <= y or right <= x:
        return out
    dst_part = out[:, y:bottom, x:right]
    src_part = src[:, : bottom - y, : right - x]
    if operation == "multiply":
        result = dst_part * src_part
    elif operation == "add":
        result = dst_part + src_part
    elif operation == "subtract":
        result = dst_part - src_part
    elif operation in ("and", "or", "xor"):
        a, b = dst_part.round().bool(), src_part.round().bool()
        logic = {"and": torch.logical_and, "or": torch.logical_or, "xor": torch.logical_xor}[operation]
        result = logic(a, b).float()
    else:
        raise ValueError(f"operation: unknown {operation!r}; expected one of {MASK_OPERATIONS}")
    out[:, y:bottom, x:right] = result
    return out.clamp(0.0, 1.0)


@node(category="mask", outputs=["MASK"])
def FeatherMask(
    mask: Any = MASK,
    left: int = Int(0, **POSITION),
    top: int = Int(0, **POSITION),
    right: int = Int(0, **POSITION),
    bottom: int = Int(0, **POSITION),
) -> Any:
    """Fade the mask linearly to the given distance from each edge: the outermost row or column is scaled by
    1/n, the n-th one in keeps its value."""
    import torch

    out = as_batch(mask).clone()
    h, w = out.shape[-2], out.shape[-1]

    def ramp(n: int, size: int) -> torch.Tensor:
        weights = torch.ones(size, dtype=out.dtype)
        n = min(n, size)
        if n > 0:
            weights[:n] = torch.arange(1, n + 1, dtype=out.dtype) / n
        return weights

    rows = ramp(top, h) * ramp(bottom, h).flip(0)
    cols = ramp(left, w) * ramp(right, w).flip(0)
    return out * rows[:, None] * cols[None, :]


def _morph(mask: torch.Tensor, steps: int, tapered: bool) -> torch.Tensor:
    """Dilate (steps > 0) or erode (steps < 0) a [B, H, W] mask one pixel per step with a 3x3 element: a cross
    with tapered corners, a square without."""
    import torch.nn.functional as F

    x = mask[:, None].float()
    grow = steps > 0
    for _ in range(abs(steps)):
        y = x if grow else -x
        padded = F.pad(y, (1, 1, 1, 1), mode="replicate")
        if tapered:
            horizontal = F.max_pool2d(padded[:, :, 1:-1, :], kernel_size=(1, 3), stride=1)
            vertical = F.max_pool2d(padded[:, :, :, 1:-1], kernel_size=(3, 1), stride=1)
            y = horizontal.maximum(vertical)
        else:
            y = F.max_pool2d(padded, kernel_size=3, stride=1)
        x = y if grow else -y
    return x[:, 0].to(mask.dtype)


@node(category="mask", outputs=["MASK"])
def GrowMask(
    mask: Any = MASK,
    expand: int = Int(0, min=-MAX_RESOLUTION, max=MAX_RESOLUTION, step=1),
    tapered_corners: bool = Boolean(True),
) -> Any:
    """Grow (positive) or shrink (negative) the mask by `expand` pixels (a grey-level dilation or erosion)."""
    return _morph(as_batch(mask), expand, tapered_corners)


@node(category="mask", outputs=["MASK"])
def ThresholdMask(mask: Any = MASK, value: float = Float(0.5, min=0.0, max=1.0, step=0.01)) -> Any:
    """1 where the mask is above `value`, else 0."""
    return (mask > value).float()


@node(category="mask", outputs=["MASK"])
def ImageColorToMask(image: Any = IMAGE, color: int = Int(0, min=0, max=0xFFFFFF, step=1, display="color")) -> Any:
    """1 where the pixel's 8-bit RGB value equals `color` (0xRRGGBB), else 0."""
    import torch

    rgb = (image[..., :3].clamp(0, 1) * 255).round().to(torch.int64)
    packed = (rgb[..., 0] << 16) + (rgb[..., 1] << 8) + rgb[..., 2]
    return (packed == color).float()


@node(category="mask", outputs=[], output_node=True)
def MaskPreview(
    ctx: NodeContext,
    mask: Any = MASK,
    prompt: Any = Hidden("PROMPT"),
    extra_pnginfo: Any = Hidden("EXTRA_PNGINFO"),
) -> dict[str, Any]:
    """Show a mask as a grey image (written to the temp folder)."""
    grey = as_batch(mask)[..., None].expand(-1, -1, -1, 3)
    return preview_images(ctx, grey, prompt, extra_pnginfo)


def _resize_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if mask.shape[-2:] == (height, width):
        return mask
    return upscale(mask[:, None], width, height, "bilinear")[:, 0]


@node(category="mask/compositing", outputs=[Out("IMAGE"), Out("MASK")], display_name="Split Image with Alpha")
def SplitImageWithAlpha(image: Any = IMAGE) -> tuple[Any, Any]:
    """The RGB channels, and the alpha channel as a mask (1 = transparent; all 0 for an image without alpha)."""
    import torch

    alpha = image[..., 3] if image.shape[-1] > 3 else torch.ones_like(image[..., 0])
    return image[..., :3], 1.0 - alpha


@node(category="mask/compositing", outputs=["IMAGE"], display_name="Join Image with Alpha")
def JoinImageWithAlpha(image: Any = IMAGE, alpha: Any = MASK) -> Any:
    """An RGBA image whose alpha is 1 - mask (the mask resized to the image, batches cycled to the longer)."""
    import torch

    alpha = as_batch(alpha)
    batch = max(image.shape[0], alpha.shape[0])
    image, alpha = repeat_to_batch(image, batch), repeat_to_batch(alpha, batch)
    alpha = _resize_mask(alpha, image.shape[1], image.shape[2])
    return torch.cat((image[..., :3], (1.0 - alpha)[..., None]), dim=-1)


PORTER_DUFF_MODES = (
    "ADD",
    "CLEAR",
    "DARKEN",
    "DST",
    "DST_ATOP",
    "DST_IN",
    "DST_OUT",
    "DST_OVER",
    "LIGHTEN",
    "MULTIPLY",
    "OVERLAY",
    "SCREEN",
    "SRC",
    "SRC_ATOP",
    "SRC_IN",
    "SRC_OUT",
    "SRC_OVER",
    "XOR",
)


def porter_duff(
    src: torch.Tensor, src_a: torch.Tensor, dst: torch.Tensor, dst_a: torch.Tensor, mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Porter & Duff (1984) compositing of premultiplied colours, plus the separable darken/lighten/multiply/
    overlay/screen blends; alphas are opacities (1 = opaque). Returns straight colour and alpha."""
    import torch

    s, d = src * src_a, dst * dst_a
    union = src_a + dst_a - src_a * dst_a
    rules: dict[str, tuple[Any, Any]] = {
        "ADD": (lambda: (s + d).clamp(0, 1), lambda: (src_a + dst_a).clamp(0, 1)),
        "CLEAR": (lambda: torch.zeros_like(d), lambda: torch.zeros_like(dst_a)),
        "DARKEN": (lambda: (1 - dst_a) * s + (1 - src_a) * d + torch.minimum(s, d), lambda: union),
        "DST": (lambda: d, lambda: dst_a),
        "DST_ATOP": (lambda: src_a * d + (1 - dst_a) * s, lambda: src_a),
        "DST_IN": (lambda: d * src_a, lambda: src_a * dst_a),
        "DST_OUT": (lambda: (1 - src_a) * d, lambda: (1 - src_a) * dst_a),
        "DST_OVER": (lambda: d + (1 - dst_a) * s, lambda: dst_a + (1 - dst_a) * src_a),
        "LIGHTEN": (lambda: (1 - dst_a) * s + (1 - src_a) * d + torch.maximum(s, d), lambda: union),
        "MULTIPLY": (lambda: s * d, lambda: src_a * dst_a),
        "OVERLAY": (
            lambda: torch.where(2 * d < dst_a, 2 * s * d, src_a * dst_a - 2 * (dst_a - d) * (src_a - s)),
            lambda: union,
        ),
        "SCREEN": (lambda: s + d - s * d, lambda: union),
        "SRC": (lambda: s, lambda: src_a),
        "SRC_ATOP": (lambda: dst_a * s + (1 - src_a) * d, lambda: dst_a),
        "SRC_IN": (lambda: s * dst_a, lambda: src_a * dst_a),
        "SRC_OUT": (lambda: (1 - dst_a) * s, lambda: (1 - dst_a) * src_a),
        "SRC_OVER": (lambda: s + (1 - src_a) * d, lambda: src_a + (1 - src_a) * dst_a),
        "XOR": (lambda: (1 - dst_a) * s + (1 - src_a) * d, lambda: (1 - dst_a) * src_a + (1 - src_a) * dst_a),
    }
    if mode not in rules:
        raise ValueError(f"mode: unknown {mode!r}; expected one of {PORTER_DUFF_MODES}")
    colour_rule, alpha_rule = rules[mode]
    colour, alpha = colour_rule(), alpha_rule()
    straight = torch.where(alpha > 1e-5, colour / alpha.clamp_min(1e-5), torch.zeros_like(colour))
    return straight.clamp(0, 1), alpha


@node(category="mask/compositing", outputs=[Out("IMAGE"), Out("MASK")], display_name="Porter-Duff Image Composite")
def PorterDuffImageComposite(
    source: Any = IMAGE,
    source_alpha: Any = MASK,
    destination: Any = IMAGE,
    destination_alpha: Any = MASK,
    mode: str = Combo(PORTER_DUFF_MODES, default="DST"),
) -> tuple[Any, Any]:
    """Composite source over destination with a Porter-Duff operator; the alphas are masks (1 = transparent),
    and the source is resized to the destination (bicubic, centre crop)."""
    source_alpha, destination_alpha = as_batch(source_alpha), as_batch(destination_alpha)
    batch = min(source.shape[0], source_alpha.shape[0], destination.shape[0], destination_alpha.shape[0])
    h, w = destination.shape[1], destination.shape[2]
    if source.shape[-1] != destination.shape[-1]:
        raise ValueError(
            f"source has {source.shape[-1]} channels and destination {destination.shape[-1]}: they must match"
        )
    src = source[:batch]
    if src.shape[1:3] != (h, w):
        src = upscale(src.movedim(-1, 1), w, h, "bicubic", "center").movedim(1, -1)
    dst_a = _resize_mask(destination_alpha[:batch], h, w)
    src_a = _resize_mask(source_alpha[:batch], h, w)
    colour, alpha = porter_duff(src, (1 - src_a)[..., None], destination[:batch], (1 - dst_a)[..., None], mode)
    return colour, 1 - alpha[..., 0]
