"""Image nodes: loading from the input folder, saving PNGs with the workflow embedded, previews, resizing,
cropping, batching, and conversion between images and masks.

IMAGE is float32 [B, H, W, C] in 0..1; MASK is [B, H, W] (1 = selected / transparent).
"""

from __future__ import annotations

import math
from typing import Any

from engine.context import NodeContext
from engine.environment import NodeEnvironment
from engine.native import Combo, Float, Hidden, Int, Out, Socket, String, node
from nodes.files import (
    check_input_file,
    input_fingerprint,
    list_input_files,
    preview_images,
    resolve_input,
    save_images,
)
from nodes.imageio import CHANNELS, load_image, load_mask
from nodes.resize import CROP_MODES, IMAGE_METHODS, upscale_image
from nodes.shared import MAX_RESOLUTION, folders_of


def _image_path(image: str, env: NodeEnvironment | None) -> Any:
    return resolve_input(folders_of(env), image)


def _image_fingerprint(image: str, env: NodeEnvironment | None, **_: Any) -> str:
    return input_fingerprint(env, image)


def _image_validate(image: str, env: NodeEnvironment | None) -> bool | str:
    return check_input_file(env, image, "image")


@node(
    category="image",
    outputs=[Out("IMAGE"), Out("MASK")],
    display_name="Load Image",
    fingerprint=_image_fingerprint,
    validate=_image_validate,
)
def LoadImage(ctx: NodeContext, image: str = Combo(list_input_files, image_upload=True)) -> tuple[Any, Any]:
    """An image from the input folder; the MASK is 1 where the image is transparent. Frames of an animated or
    multi-page file become a batch."""
    return load_image(_image_path(image, ctx.env))


@node(
    category="mask",
    outputs=["MASK"],
    fingerprint=_image_fingerprint,
    validate=_image_validate,
    display_name="Load Image (as Mask)",
)
def LoadImageMask(
    ctx: NodeContext,
    image: str = Combo(list_input_files, image_upload=True),
    channel: str = Combo(CHANNELS),
) -> Any:
    """One channel of an image from the input folder as a mask (alpha inverted: 1 = transparent)."""
    return load_mask(_image_path(image, ctx.env), channel)


@node(category="image", outputs=[], output_node=True, display_name="Save Image")
def SaveImage(
    ctx: NodeContext,
    images: Any = Socket("IMAGE", tooltip="The images to save."),
    filename_prefix: str = String(
        "Loom",
        tooltip="File name prefix; may name subfolders ('sub/name') and use %date:yyyy-MM-dd%, %width%, %height%, "
        "%batch_num% or %Node title.widget%.",
    ),
    prompt: Any = Hidden("PROMPT"),
    extra_pnginfo: Any = Hidden("EXTRA_PNGINFO"),
) -> dict[str, Any]:
    """Save PNGs to the output folder as `<prefix>_00001_.png`, never overwriting, with the workflow embedded."""
    return save_images(ctx, images, filename_prefix, "output", prompt, extra_pnginfo, compress_level=4)


@node(category="image", outputs=[], output_node=True, display_name="Preview Image")
def PreviewImage(
    ctx: NodeContext,
    images: Any = Socket("IMAGE"),
    prompt: Any = Hidden("PROMPT"),
    extra_pnginfo: Any = Hidden("EXTRA_PNGINFO"),
) -> dict[str, Any]:
    """Show images without keeping them: written to the temp folder, not the output folder."""
    return preview_images(ctx, images, prompt, extra_pnginfo)


@node(category="image/upscaling", outputs=["IMAGE"], display_name="Upscale Image")
def ImageScale(
    image: Any = Socket("IMAGE"),
    upscale_method: str = Combo(IMAGE_METHODS),
    width: int = Int(512, min=0, max=MAX_RESOLUTION, step=1),
    height: int = Int(512, min=0, max=MAX_RESOLUTION, step=1),
    crop: str = Combo(CROP_MODES),
) -> Any:
    """Resize to width x height; a side of 0 follows the other keeping the aspect ratio (both 0: unchanged)."""
    if width == 0 and height == 0:
        return image
    h, w = image.shape[1], image.shape[2]
    if width == 0:
        width = max(1, round(w * height / h))
    elif height == 0:
        height = max(1, round(h * width / w))
    return upscale_image(image, width, height, upscale_method, crop)


def _scale(image: Any, factor: float, method: str) -> Any:
    """Resize both sides by `factor`, keeping at least one pixel."""
    h, w = image.shape[1], image.shape[2]
    return upscale_image(image, max(1, round(w * factor)), max(1, round(h * factor)), method)


@node(category="image/upscaling", outputs=["IMAGE"], display_name="Upscale Image By")
def ImageScaleBy(
    image: Any = Socket("IMAGE"),
    upscale_method: str = Combo(IMAGE_METHODS),
    scale_by: float = Float(1.0, min=0.01, max=8.0, step=0.01),
) -> Any:
    return _scale(image, scale_by, upscale_method)


@node(category="image/upscaling", outputs=["IMAGE"], display_name="Scale Image to Total Pixels")
def ImageScaleToTotalPixels(
    image: Any = Socket("IMAGE"),
    upscale_method: str = Combo(IMAGE_METHODS),
    megapixels: float = Float(1.0, min=0.01, max=16.0, step=0.01),
) -> Any:
    """Resize keeping the aspect ratio so the image has about `megapixels` x 1024 x 1024 pixels."""
    scale = math.sqrt(megapixels * 1024 * 1024 / (image.shape[2] * image.shape[1]))
    return _scale(image, scale, upscale_method)


@node(category="image", outputs=["IMAGE"], display_name="Invert Image")
def ImageInvert(image: Any = Socket("IMAGE")) -> Any:
    return 1.0 - image


@node(category="image", outputs=["IMAGE"], display_name="Batch Images")
def ImageBatch(image1: Any = Socket("IMAGE"), image2: Any = Socket("IMAGE")) -> Any:
    """Join two batches; image2 is resized (bilinear, centre crop) to image1's size when they differ."""
    import torch

    if image1.shape[3] != image2.shape[3]:
        raise ValueError(
            f"image1 has {image1.shape[3]} channels and image2 {image2.shape[3]}: they cannot be batched together"
        )
    if image1.shape[1:] != image2.shape[1:]:
        image2 = upscale_image(image2, image1.shape[2], image1.shape[1], "bilinear", "center")
    return torch.cat((image1, image2), dim=0)


@node(category="image/transform", outputs=["IMAGE"], display_name="Crop Image")
def ImageCrop(
    image: Any = Socket("IMAGE"),
    width: int = Int(512, min=1, max=MAX_RESOLUTION, step=1),
    height: int = Int(512, min=1, max=MAX_RESOLUTION, step=1),
    x: int = Int(0, min=0, max=MAX_RESOLUTION, step=1),
    y: int = Int(0, min=0, max=MAX_RESOLUTION, step=1),
) -> Any:
    """The width x height region at (x, y), cut short at the image's edges; the origin stays inside the image."""
    x, y = min(x, image.shape[2] - 1), min(y, image.shape[1] - 1)
    return image[:, y : y + height, x : x + width, :]


MASK_CHANNELS = ("red", "green", "blue", "alpha")


@node(category="mask", outputs=["MASK"], display_name="Convert Image to Mask")
def ImageToMask(image: Any = Socket("IMAGE"), channel: str = Combo(MASK_CHANNELS)) -> Any:
    """One channel of an image as a mask (not inverted)."""
    index = MASK_CHANNELS.index(channel) if channel in MASK_CHANNELS else -1
    if index < 0:
        raise ValueError(f"unknown channel {channel!r}; expected one of {MASK_CHANNELS}")
    if index >= image.shape[3]:
        raise ValueError(f"the image has {image.shape[3]} channels, so it has no {channel} channel")
    return image[:, :, :, index]


@node(category="mask", outputs=["IMAGE"], display_name="Convert Mask to Image")
def MaskToImage(mask: Any = Socket("MASK")) -> Any:
    """A mask as a grey RGB image."""
    return mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).movedim(1, -1).expand(-1, -1, -1, 3)
