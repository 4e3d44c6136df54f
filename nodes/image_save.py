"""More ways images leave and enter: animated WEBP and PNG files, images sent over the WebSocket instead of
saved, images loaded back from the output folder, and a folder of images loaded as one batch."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from engine.context import NodeContext
from engine.environment import NodeEnvironment
from engine.events import Preview
from engine.folders import UnsafePath, confined
from engine.native import Boolean, Combo, Float, Hidden, Int, Socket, String, node
from nodes.files import (
    IMAGE_EXTENSIONS,
    OutputWriter,
    check_input_file,
    input_fingerprint,
    resolve_input,
)
from nodes.imageio import encode_png, load_image, text_chunks, to_uint8
from nodes.resize import center_crop_to_aspect, upscale
from nodes.shared import folders_of

IMAGE = Socket("IMAGE")
WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}
# The EXIF tag the ecosystem stores a WEBP's prompt in (Model); further entries go in the tags below it (Make, ...).
EXIF_FIRST_TAG = 0x0110


def encode_animation(images: Any, fps: float, fmt: str, **options: Any) -> bytes:
    """One file holding every image of the batch as a frame (Pillow's `save_all`), `fps` frames a second."""
    from PIL import Image

    frames = [Image.fromarray(to_uint8(image)) for image in images]
    buffer = io.BytesIO()
    duration = round(1000.0 / fps)
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], duration=duration, **options)
    return buffer.getvalue()


def _animated_ui(ctx: NodeContext, data: bytes, ext: str, prefix: str, images: Any, prompt: Any) -> dict[str, Any]:
    writer = OutputWriter(folders_of(ctx.env).output, "output", prefix, images.shape[2], images.shape[1], prompt)
    saved = writer.write(data, ext)
    return {"ui": {"images": [saved], "animated": [images.shape[0] > 1]}, "result": ()}


def webp_exif(text: dict[str, str]) -> Any:
    """The text entries as "key:value" EXIF strings, where the ecosystem's readers look for them."""
    from PIL import Image

    exif = Image.Exif()
    for offset, (key, value) in enumerate(text.items()):
        exif[EXIF_FIRST_TAG - offset] = f"{key}:{value}"
    return exif


@node(category="image/animation", outputs=[], output_node=True)
def SaveAnimatedWEBP(
    ctx: NodeContext,
    images: Any = IMAGE,
    filename_prefix: str = String("Loom"),
    fps: float = Float(6.0, min=0.01, max=1000.0, step=0.01),
    lossless: bool = Boolean(True),
    quality: int = Int(80, min=0, max=100),
    method: str = Combo(tuple(WEBP_METHODS)),
    prompt: Any = Hidden("PROMPT"),
    extra_pnginfo: Any = Hidden("EXTRA_PNGINFO"),
) -> dict[str, Any]:
    """Save the batch as one animated WEBP (a frame per image) with the workflow in its EXIF data."""
    if method not in WEBP_METHODS:
        raise ValueError(f"method: unknown {method!r}; expected one of {tuple(WEBP_METHODS)}")
    exif = webp_exif(text_chunks(prompt, extra_pnginfo))
    options = {"lossless": lossless, "quality": quality, "method": WEBP_METHODS[method], "exif": exif}
    data = encode_animation(images, fps, "WEBP", **options)
    return _animated_ui(ctx, data, "webp", filename_prefix, images, prompt)


@node(category="image/animation", outputs=[], output_node=True)
def SaveAnimatedPNG(
    ctx: NodeContext,
    images: Any = IMAGE,
    filename_prefix: str = String("Loom"),
    fps: float = Float(6.0, min=0.01, max=1000.0, step=0.01),
    compress_level: int = Int(4, min=0, max=9),
    prompt: Any = Hidden("PROMPT"),
    extra_pnginfo: Any = Hidden("EXTRA_PNGINFO"),
) -> dict[str, Any]:
    """Save the batch as one animated PNG with the workflow in its text chunks."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in text_chunks(prompt, extra_pnginfo).items():
        info.add_text(key, value)
    data = encode_animation(images, fps, "PNG", compress_level=compress_level, pnginfo=info)
    return _animated_ui(ctx, data, "png", filename_prefix, images, prompt)


@node(category="api node/image", outputs=[], output_node=True)
def SaveImageWebsocket(ctx: NodeContext, images: Any = IMAGE) -> dict[str, Any]:
    """Send each image as a PNG over the WebSocket (a binary preview message per image) instead of saving it;
    scripts that drive the API collect them there. Like every preview, they are dropped for a lagging client."""
    total = images.shape[0]
    for number, image in enumerate(images):
        ctx.progress(number + 1, total, Preview("PNG", encode_png(to_uint8(image), compress_level=1)))
    return {"ui": {}, "result": ()}


def _output_images(env: NodeEnvironment | None) -> list[str]:
    """Images anywhere under the output folder, newest first, as `sub/name.png [output]`."""
    if env is None or not env.folders.output.is_dir():
        return []
    root = env.folders.output
    found = [
        path
        for path in root.rglob("*")
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
    ]
    found.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    return [f"{p.relative_to(root).as_posix()} [output]" for p in found]


def _output_fingerprint(image: str, env: NodeEnvironment | None) -> str:
    return input_fingerprint(env, image)


def _output_validate(image: str, env: NodeEnvironment | None) -> bool | str:
    return check_input_file(env, image, "image")


@node(
    category="image",
    outputs=["IMAGE", "MASK"],
    display_name="Load Image (from Outputs)",
    experimental=True,
    fingerprint=_output_fingerprint,
    validate=_output_validate,
)
def LoadImageOutput(
    ctx: NodeContext,
    image: str = Combo(_output_images, image_upload=True, image_folder="output"),
) -> tuple[Any, Any]:
    """An image from the output folder (newest first), e.g. to iterate on a result; the MASK is its
    transparency."""
    return load_image(resolve_input(folders_of(ctx.env), image))


def _input_subfolders(env: NodeEnvironment | None) -> list[str]:
    if env is None or not env.folders.input.is_dir():
        return []
    root = env.folders.input
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir() and not p.name.startswith("."))


RESIZE_METHODS = ("None", "Stretch", "Crop", "Pad")


def _fit(image: Any, width: int, height: int, method: str) -> Any:
    """One [1, H, W, C] image brought to width x height: stretched, centre-cropped to the aspect ratio, or padded
    (black) to it, then resized."""
    import torch.nn.functional as F

    x = image.movedim(-1, 1)
    if method == "Crop":
        x = center_crop_to_aspect(x, width, height)
    elif method == "Pad":
        h, w = x.shape[-2:]
        target_w, target_h = max(w, round(h * width / height)), max(h, round(w * height / width))
        left, top = (target_w - w) // 2, (target_h - h) // 2
        x = F.pad(x, (left, target_w - w - left, top, target_h - h - top))
    return upscale(x, width, height, "bilinear").movedim(1, -1)


@node(category="loaders", outputs=["IMAGE"], display_name="Load Image Dataset from Folder", experimental=True)
def LoadImageSetFromFolderNode(
    ctx: NodeContext,
    folder: str = Combo(_input_subfolders, tooltip="The folder to load images from."),
    resize_method: str = Combo(RESIZE_METHODS, default="None", optional=True),
) -> Any:
    """Every image in a subfolder of the input folder, in name order, as one batch; with a resize method they
    are brought to the first image's size, without one they must all have it."""
    import torch

    folders = folders_of(ctx.env)
    try:
        root = confined(folders.input, folder)
    except UnsafePath as exc:
        raise ValueError(f"folder: {exc}") from exc
    if not root.is_dir():
        raise FileNotFoundError(f"folder: {folder!r} is not a folder in the input folder")
    paths = sorted(
        Path(entry.path)
        for entry in os.scandir(root)
        if entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS
    )
    if not paths:
        raise ValueError(f"folder: {folder!r} holds no images")
    images = [load_image(path)[0][:1][..., :3] for path in paths]
    height, width = images[0].shape[1], images[0].shape[2]
    if resize_method not in RESIZE_METHODS:
        raise ValueError(f"resize_method: unknown {resize_method!r}; expected one of {RESIZE_METHODS}")
    out = []
    for path, image in zip(paths, images, strict=True):
        if image.shape[1:3] != (height, width):
            if resize_method == "None":
                raise ValueError(
                    f"{path.name} is {image.shape[2]}x{image.shape[1]}, not {width}x{height} like the first image; "
                    "pick a resize_method"
                )
            image = _fit(image, width, height, resize_method)
        out.append(image)
    return torch.cat(out)
