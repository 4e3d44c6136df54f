"""Image post-processing: blend modes, Gaussian blur, sharpening, palette quantisation (with Floyd-Steinberg or
ordered Bayer dithering), grey-level morphology, and RGB <-> YUV (YCbCr) channel splits."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from engine.native import Combo, Float, Int, Out, Socket, node
from nodes.resize import gaussian_kernel, match_channels, repeat_to_batch, upscale_image

if TYPE_CHECKING:
    import numpy as np
    import torch

IMAGE = Socket("IMAGE")
CATEGORY = "image/postprocessing"
BLEND_MODES = ("normal", "multiply", "screen", "overlay", "soft_light", "difference")


def blend(base: torch.Tensor, layer: torch.Tensor, mode: str) -> torch.Tensor:
    """The separable blend modes of the W3C compositing spec (soft light as defined there), plus difference as
    base - layer, which the clamp that follows turns into a one-sided difference."""
    import torch

    if mode == "normal":
        return layer
    if mode == "multiply":
        return base * layer
    if mode == "screen":
        return 1 - (1 - base) * (1 - layer)
    if mode == "overlay":
        return torch.where(base <= 0.5, 2 * base * layer, 1 - 2 * (1 - base) * (1 - layer))
    if mode == "soft_light":
        d = torch.where(base <= 0.25, ((16 * base - 12) * base + 4) * base, base.clamp_min(0).sqrt())
        darker = base - (1 - 2 * layer) * base * (1 - base)
        return torch.where(layer <= 0.5, darker, base + (2 * layer - 1) * (d - base))
    if mode == "difference":
        return base - layer
    raise ValueError(f"blend_mode: unknown {mode!r}; expected one of {BLEND_MODES}")


@node(category=CATEGORY, outputs=["IMAGE"], display_name="Image Blend")
def ImageBlend(
    image1: Any = IMAGE,
    image2: Any = IMAGE,
    blend_factor: float = Float(0.5, min=0.0, max=1.0, step=0.01),
    blend_mode: str = Combo(BLEND_MODES),
) -> Any:
    """Mix image2 blended onto image1 by `blend_factor`; image2 is resized (bicubic, centre crop) to fit."""
    image1, image2 = match_channels(image1, image2.to(image1))
    if image1.shape[1:] != image2.shape[1:]:
        image2 = upscale_image(image2, image1.shape[2], image1.shape[1], "bicubic", "center")
    image2 = repeat_to_batch(image2, image1.shape[0])
    mixed = image1 * (1 - blend_factor) + blend(image1, image2, blend_mode) * blend_factor
    return mixed.clamp(0, 1)


def convolve(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Filter each channel of an IMAGE with `kernel`, mirroring the borders (replicating them when the image is
    smaller than the kernel's radius)."""
    import torch.nn.functional as F

    radius = kernel.shape[-1] // 2
    x = image.movedim(-1, 1)
    channels = x.shape[1]
    mode = "reflect" if min(x.shape[-2:]) > radius else "replicate"
    padded = F.pad(x, (radius, radius, radius, radius), mode=mode)
    weight = kernel.to(x).expand(channels, 1, *kernel.shape)
    return F.conv2d(padded, weight, groups=channels).movedim(1, -1)


@node(category=CATEGORY, outputs=["IMAGE"], display_name="Image Blur")
def ImageBlur(
    image: Any = IMAGE,
    blur_radius: int = Int(1, min=1, max=31, step=1),
    sigma: float = Float(1.0, min=0.1, max=10.0, step=0.1),
) -> Any:
    """Gaussian blur with a (2 * blur_radius + 1)-pixel kernel."""
    return convolve(image, gaussian_kernel(2 * blur_radius + 1, sigma, image.device))


@node(category=CATEGORY, outputs=["IMAGE"], display_name="Image Sharpen")
def ImageSharpen(
    image: Any = IMAGE,
    sharpen_radius: int = Int(1, min=1, max=31, step=1),
    sigma: float = Float(1.0, min=0.1, max=10.0, step=0.01),
    alpha: float = Float(1.0, min=0.0, max=5.0, step=0.01),
) -> Any:
    """Unsharp masking: the image plus 10 * alpha times its difference from a Gaussian blur, clamped to 0..1."""
    kernel = gaussian_kernel(2 * sharpen_radius + 1, sigma, image.device) * -(alpha * 10)
    centre = sharpen_radius
    kernel[centre, centre] += 1.0 - kernel.sum()
    return convolve(image, kernel).clamp(0, 1)


DITHERS = ("none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16")


def bayer_matrix(order: int) -> np.ndarray:
    """The order x order Bayer threshold matrix scaled to [0, 1): M(2n) = [[4M, 4M+2], [4M+3, 4M+1]] / 4n^2."""
    import numpy as np

    m = np.zeros((1, 1))
    while m.shape[0] < order:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return m / (order * order)


def _quantize(pixels: np.ndarray, colors: int, dither: str) -> np.ndarray:
    import numpy as np
    from PIL import Image

    image = Image.fromarray(pixels, mode="RGB")
    palette = image.quantize(colors=colors)  # a median-cut palette of the image itself
    if dither == "none":
        out = image.quantize(palette=palette, dither=Image.Dither.NONE)
    elif dither == "floyd-steinberg":
        out = image.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
    else:
        order = int(dither.split("-")[1])
        spread = 2 * 256 / max(1, len(palette.getpalette() or ()) // 3)
        threshold = spread * (bayer_matrix(order) - 0.5)
        h, w = pixels.shape[:2]
        tiled = np.tile(threshold, (math.ceil(h / order), math.ceil(w / order)))[:h, :w, None]
        shifted = np.clip(pixels.astype(np.float32) + tiled, 0, 255).astype(np.uint8)
        out = Image.fromarray(shifted, mode="RGB").quantize(palette=palette, dither=Image.Dither.NONE)
    return np.asarray(out.convert("RGB"))


@node(category=CATEGORY, outputs=["IMAGE"], display_name="Image Quantize")
def ImageQuantize(
    image: Any = IMAGE,
    colors: int = Int(256, min=1, max=256, step=1),
    dither: str = Combo(DITHERS),
) -> Any:
    """Reduce each image to a palette of at most `colors` colours chosen from it."""
    import numpy as np
    import torch

    if dither not in DITHERS:
        raise ValueError(f"dither: unknown {dither!r}; expected one of {DITHERS}")
    rgb = (image[..., :3].clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()
    frames = [_quantize(np.ascontiguousarray(frame), colors, dither) for frame in rgb]
    return torch.from_numpy(np.stack(frames)).float().div(255).to(image.device)


MORPHOLOGY = ("erode", "dilate", "open", "close", "gradient", "bottom_hat", "top_hat")


def _dilate(x: torch.Tensor, size: int) -> torch.Tensor:
    """Maximum over a size x size window; the outside of the image never wins."""
    import torch.nn.functional as F

    before, after = size // 2, size - 1 - size // 2
    padded = F.pad(x, (before, after, before, after), value=float("-inf"))
    return F.max_pool2d(padded, size, stride=1)


def _erode(x: torch.Tensor, size: int) -> torch.Tensor:
    return -_dilate(-x, size)


def morphology(x: torch.Tensor, operation: str, size: int) -> torch.Tensor:
    """Flat grey-level morphology of [B, C, H, W] with a square structuring element."""
    if operation == "erode":
        return _erode(x, size)
    if operation == "dilate":
        return _dilate(x, size)
    if operation == "open":
        return _dilate(_erode(x, size), size)
    if operation == "close":
        return _erode(_dilate(x, size), size)
    if operation == "gradient":
        return _dilate(x, size) - _erode(x, size)
    if operation == "top_hat":
        return x - _dilate(_erode(x, size), size)
    if operation == "bottom_hat":
        return _erode(_dilate(x, size), size) - x
    raise ValueError(f"operation: unknown {operation!r}; expected one of {MORPHOLOGY}")


@node(category=CATEGORY, outputs=["IMAGE"], display_name="ImageMorphology")
def Morphology(
    image: Any = IMAGE,
    operation: str = Combo(MORPHOLOGY),
    kernel_size: int = Int(3, min=3, max=999, step=1),
) -> Any:
    """Erode, dilate, open, close, gradient and top/bottom hat with a kernel_size square."""
    return morphology(image.movedim(-1, 1), operation, kernel_size).movedim(1, -1)


# ITU-R BT.601 full-range YCbCr (JPEG); chroma is offset by 0.5 so every channel lies in 0..1.
_KR, _KB = 0.299, 0.114
_KG = 1 - _KR - _KB


@node(category="image/batch", outputs=[Out("IMAGE", "Y"), Out("IMAGE", "U"), Out("IMAGE", "V")])
def ImageRGBToYUV(image: Any = IMAGE) -> tuple[Any, Any, Any]:
    """Luma (Y) and the blue/red chroma differences (U = Cb, V = Cr) of an RGB image, each as a grey image."""
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    y = _KR * r + _KG * g + _KB * b
    u = (b - y) / (2 * (1 - _KB)) + 0.5
    v = (r - y) / (2 * (1 - _KR)) + 0.5
    shape = (*image.shape[:-1], 3)
    return y[..., None].expand(shape), u[..., None].expand(shape), v[..., None].expand(shape)


@node(category="image/batch", outputs=["IMAGE"])
def ImageYUVToRGB(Y: Any = IMAGE, U: Any = IMAGE, V: Any = IMAGE) -> Any:
    """An RGB image from Y, U and V channel images (the mean of each image's colour channels)."""
    import torch

    y, u, v = (t[..., :3].mean(dim=-1) for t in (Y, U, V))
    cb, cr = u - 0.5, v - 0.5
    r = y + 2 * (1 - _KR) * cr
    b = y + 2 * (1 - _KB) * cb
    g = (y - _KR * r - _KB * b) / _KG
    return torch.stack((r, g, b), dim=-1)
