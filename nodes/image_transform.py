"""Image geometry and batches: empty images, sizes, pasting with a mask, padding for outpainting, flips, rotations,
stitching, fitting into a box, and picking or repeating batch items. IMAGE is float [B, H, W, C] in 0..1."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.native import Boolean, Combo, Float, Hidden, Int, Out, Socket, node
from nodes.resize import match_channels, paste, upscale_image
from nodes.shared import MAX_RESOLUTION

if TYPE_CHECKING:
    import torch

IMAGE = Socket("IMAGE")
MAX_SEED = 0xFFFF_FFFF_FFFF_FFFF


@node(category="image", outputs=["IMAGE"])
def EmptyImage(
    width: int = Int(512, min=1, max=MAX_RESOLUTION, step=1),
    height: int = Int(512, min=1, max=MAX_RESOLUTION, step=1),
    batch_size: int = Int(1, min=1, max=4096),
    color: int = Int(0, min=0, max=0xFFFFFF, step=1, display="color"),
) -> Any:
    """A batch of images filled with one colour (0xRRGGBB)."""
    import torch

    rgb = torch.tensor([(color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF], dtype=torch.float32) / 255.0
    return rgb.expand(batch_size, height, width, 3).clone()


@node(
    category="image",
    outputs=[Out("INT", "width"), Out("INT", "height"), Out("INT", "batch_size")],
    display_name="Get Image Size",
)
def GetImageSize(image: Any = IMAGE, unique_id: Any = Hidden("UNIQUE_ID")) -> dict[str, Any]:
    """Width, height and batch size of an image, also shown on the node as text. (`unique_id` is declared as
    the reference declares it, so clients that send it validate.)"""
    width, height, batch = int(image.shape[2]), int(image.shape[1]), int(image.shape[0])
    text = f"width: {width}, height: {height}\n batch size: {batch}"
    return {"ui": {"text": [text]}, "result": (width, height, batch)}


@node(category="image", outputs=["IMAGE"])
def ImageCompositeMasked(
    destination: Any = IMAGE,
    source: Any = IMAGE,
    x: int = Int(0, min=0, max=MAX_RESOLUTION, step=1),
    y: int = Int(0, min=0, max=MAX_RESOLUTION, step=1),
    resize_source: bool = Boolean(False),
    mask: Any = Socket("MASK", optional=True),
) -> Any:
    """Paste `source` onto `destination` at (x, y), through `mask` when given."""
    destination, source = match_channels(destination, source)
    return paste(destination.movedim(-1, 1), source.movedim(-1, 1), x, y, mask, 1, resize_source).movedim(1, -1)


@node(category="image", outputs=[Out("IMAGE"), Out("MASK")], display_name="Pad Image for Outpainting")
def ImagePadForOutpaint(
    image: Any = IMAGE,
    left: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
    top: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
    right: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
    bottom: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
    feathering: int = Int(40, min=0, max=MAX_RESOLUTION, step=1),
) -> tuple[Any, Any]:
    """Grow the canvas with grey borders and a mask of the new area to paint; `feathering` pixels of the old
    image next to a padded edge fade into the mask (quadratically), so the seam is repainted too."""
    import torch

    b, h, w, c = image.shape
    out = torch.full((b, h + top + bottom, w + left + right, c), 0.5, dtype=image.dtype)
    out[:, top : top + h, left : left + w] = image
    mask = torch.ones((h + top + bottom, w + left + right), dtype=torch.float32)
    inner = torch.zeros((h, w), dtype=torch.float32)
    if feathering > 0 and feathering * 2 < h and feathering * 2 < w:
        rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
        cols = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
        far = torch.full((h, w), float(max(h, w)))
        distance = torch.stack(
            (
                rows if top else far,
                (h - 1 - rows) if bottom else far,
                cols if left else far,
                (w - 1 - cols) if right else far,
            )
        ).amin(dim=0)
        fade = ((feathering - distance) / feathering).clamp_min(0)
        inner = torch.where(distance < feathering, fade * fade, inner)
    mask[top : top + h, left : left + w] = inner
    return out, mask[None]


FLIP_METHODS = ("x-axis: vertically", "y-axis: horizontally")


@node(category="image/transform", outputs=["IMAGE"])
def ImageFlip(image: Any = IMAGE, flip_method: str = Combo(FLIP_METHODS)) -> Any:
    """Mirror top-bottom (x-axis) or left-right (y-axis)."""
    if flip_method not in FLIP_METHODS:
        raise ValueError(f"flip_method: unknown {flip_method!r}; expected one of {FLIP_METHODS}")
    return image.flip(1 if flip_method.startswith("x") else 2)


ROTATIONS = ("none", "90 degrees", "180 degrees", "270 degrees")


@node(category="image/transform", outputs=["IMAGE"], display_name="Rotate")
def ImageRotate(image: Any = IMAGE, rotation: str = Combo(ROTATIONS)) -> Any:
    """Rotate clockwise by the chosen angle."""
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation: unknown {rotation!r}; expected one of {ROTATIONS}")
    return image.rot90(ROTATIONS.index(rotation), dims=(2, 1))


STITCH_COLOURS = {
    "white": (1.0, 1.0, 1.0),
    "black": (0.0, 0.0, 0.0),
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
}


def _fill(shape: tuple[int, ...], rgb: tuple[float, float, float], like: torch.Tensor) -> torch.Tensor:
    """A block of one colour with `like`'s channel count (alpha, when there is one, opaque)."""
    import torch

    out = torch.ones(shape, dtype=like.dtype, device=like.device)
    for i, value in enumerate(rgb[: shape[-1]]):
        out[..., i] = value
    return out


def _centre_pad(image: torch.Tensor, dim: int, size: int, value: float) -> torch.Tensor:
    import torch

    missing = size - image.shape[dim]
    if missing <= 0:
        return image
    before_shape = list(image.shape)
    before_shape[dim] = missing // 2
    after_shape = list(image.shape)
    after_shape[dim] = missing - missing // 2
    before = torch.full(before_shape, value, dtype=image.dtype, device=image.device)
    after = torch.full(after_shape, value, dtype=image.dtype, device=image.device)
    return torch.cat((before, image, after), dim=dim)


@node(category="image/transform", outputs=["IMAGE"], display_name="Image Stitch")
def ImageStitch(
    image1: Any = IMAGE,
    direction: str = Combo(("right", "down", "left", "up"), default="right"),
    match_image_size: bool = Boolean(True),
    spacing_width: int = Int(0, min=0, max=1024, step=2),
    spacing_color: str = Combo(tuple(STITCH_COLOURS), default="white"),
    image2: Any = Socket("IMAGE", optional=True),
) -> Any:
    """Place image2 beside image1 (right/left) or below/above it (down/up), with an optional spacer. Sizes are
    matched by resizing image2 (keeping its aspect ratio) or by centring the smaller on padding; the shorter batch
    repeats its last image."""
    import torch

    if image2 is None:
        return image1
    if direction not in ("right", "down", "left", "up"):
        raise ValueError(f"direction: unknown {direction!r}")
    if spacing_color not in STITCH_COLOURS:
        raise ValueError(f"spacing_color: unknown {spacing_color!r}; expected one of {tuple(STITCH_COLOURS)}")
    batch = max(image1.shape[0], image2.shape[0])

    def extend(image: torch.Tensor) -> torch.Tensor:
        extra = batch - image.shape[0]
        return torch.cat((image, image[-1:].repeat(extra, 1, 1, 1))) if extra else image

    image1, image2 = extend(image1), extend(image2.to(image1))
    sideways = direction in ("right", "left")
    colour = STITCH_COLOURS[spacing_color]
    if match_image_size:
        h1, w1 = image1.shape[1:3]
        h2, w2 = image2.shape[1:3]
        size = (max(1, int(h1 * w2 / h2)), h1) if sideways else (w1, max(1, int(w1 * h2 / w2)))
        image2 = upscale_image(image2, size[0], size[1], "lanczos")
    else:
        dim = 1 if sideways else 2
        size_along = max(image1.shape[dim], image2.shape[dim])
        pad_value = colour[0] if len(set(colour)) == 1 else 0.0
        image1 = _centre_pad(image1, dim, size_along, pad_value)
        image2 = _centre_pad(image2, dim, size_along, pad_value)
    image1, image2 = match_channels(image1, image2)
    parts = [image2, image1] if direction in ("left", "up") else [image1, image2]
    if spacing_width > 0:
        gap = spacing_width + spacing_width % 2
        if sideways:
            shape = (batch, image1.shape[1], gap, image1.shape[3])
        else:
            shape = (batch, gap, image1.shape[2], image1.shape[3])
        parts.insert(1, _fill(shape, colour, image1))
    return torch.cat(parts, dim=2 if sideways else 1)


@node(category="image/transform", outputs=["IMAGE"])
def ResizeAndPadImage(
    image: Any = IMAGE,
    target_width: int = Int(512, min=1, max=MAX_RESOLUTION, step=1),
    target_height: int = Int(512, min=1, max=MAX_RESOLUTION, step=1),
    padding_color: str = Combo(("white", "black")),
    interpolation: str = Combo(("area", "bicubic", "nearest-exact", "bilinear", "lanczos")),
) -> Any:
    """Fit the image inside target_width x target_height keeping its aspect ratio, centred on a white or black
    background."""
    import torch

    b, h, w, c = image.shape
    scale = min(target_width / w, target_height / h)
    new_w, new_h = max(1, int(w * scale)), max(1, int(h * scale))
    resized = upscale_image(image, new_w, new_h, interpolation)
    out = torch.full((b, target_height, target_width, c), 0.0 if padding_color == "black" else 1.0, dtype=image.dtype)
    y, x = (target_height - new_h) // 2, (target_width - new_w) // 2
    out[:, y : y + new_h, x : x + new_w] = resized
    return out


@node(category="image/upscaling", outputs=["IMAGE"])
def ImageScaleToMaxDimension(
    image: Any = IMAGE,
    upscale_method: str = Combo(("area", "lanczos", "bilinear", "nearest-exact", "bilinear", "bicubic")),
    largest_size: int = Int(512, min=0, max=MAX_RESOLUTION, step=1),
) -> Any:
    """Resize so the longer side is `largest_size` pixels, keeping the aspect ratio."""
    h, w = image.shape[1], image.shape[2]
    if largest_size < 1:
        raise ValueError("largest_size: must be at least 1")
    if h > w:
        w, h = max(1, round(w / h * largest_size)), largest_size
    elif w > h:
        w, h = largest_size, max(1, round(h / w * largest_size))
    else:
        w = h = largest_size
    return upscale_image(image, w, h, upscale_method)


@node(category="image/batch", outputs=["IMAGE"])
def ImageFromBatch(
    image: Any = IMAGE,
    batch_index: int = Int(0, min=0, max=4095),
    length: int = Int(1, min=1, max=4096),
) -> Any:
    """Images batch_index .. batch_index+length-1, clamped to the batch."""
    start = min(image.shape[0] - 1, batch_index)
    return image[start : start + min(image.shape[0] - start, length)].clone()


@node(category="image/batch", outputs=["IMAGE"])
def RepeatImageBatch(image: Any = IMAGE, amount: int = Int(1, min=1, max=4096)) -> Any:
    return image.repeat((amount, 1, 1, 1))


@node(category="image", outputs=["IMAGE"])
def ImageAddNoise(
    image: Any = IMAGE,
    seed: int = Int(0, min=0, max=MAX_SEED, control_after_generate=True, tooltip="Seed of the noise."),
    strength: float = Float(0.5, min=0.0, max=1.0, step=0.01),
) -> Any:
    """Add seeded Gaussian noise (drawn on the CPU, so a seed gives the same result anywhere), clamped to 0..1."""
    import torch

    generator = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn(image.shape, generator=generator, dtype=torch.float32).to(image)
    return (image + strength * noise).clamp(0.0, 1.0)
