"""Pillow work for /view and the uploads. Images from outside are decoded under a pixel limit (decompression
bombs) and re-encoded, so what lands in input/ is a clean image and never a polyglot file. Pillow is imported on
first use, keeping it out of start-up."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

WRITABLE = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WEBP", "BMP": "BMP", "GIF": "GIF", "TIFF": "TIFF"}
# the file name endings of each written format; the first is given to a name that ends otherwise
EXTENSIONS = {
    "PNG": (".png",),
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "WEBP": (".webp",),
    "BMP": (".bmp",),
    "GIF": (".gif",),
    "TIFF": (".tiff", ".tif"),
}


class ImageRejected(ValueError):
    """Not an image Loom accepts (unreadable, too many pixels, unknown format)."""


def open_image(source: bytes | Path, max_pixels: int) -> Any:
    """A fully decoded PIL image, refusing anything over `max_pixels` before its pixels are decoded."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageRejected(f"image is {width}x{height}, more than the {max_pixels} pixels allowed")
            image.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"image refused as a decompression bomb: {exc}") from exc
    except Exception as exc:  # Pillow raises many types for corrupt files
        raise ImageRejected(f"not a readable image: {exc}") from exc
    return image


def named_for(name: str, fmt: str) -> str:
    """`name` ending as an image of format `fmt` must (an upload named x.html holding a PNG is kept as x.png)."""
    endings = EXTENSIONS[fmt]
    path = Path(name)
    if path.suffix.lower() in endings:
        return name
    return (path.stem if path.suffix else path.name) + endings[0]


def resave(data: bytes, max_pixels: int) -> tuple[bytes, str]:
    """Decode and re-encode an uploaded image in its own format, keeping PNG text (embedded workflows); returns the
    bytes and the format written."""
    from PIL import PngImagePlugin

    image = open_image(data, max_pixels)
    fmt = WRITABLE.get(image.format or "")
    if fmt is None:
        raise ImageRejected(f"unsupported image format {image.format!r}")
    out = io.BytesIO()
    options: dict[str, Any] = {}
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        for key, value in image.info.items():
            if isinstance(value, str):
                info.add_text(key, value)
        options["pnginfo"] = info
    elif fmt == "JPEG":
        options["quality"] = 95
        if image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
    image.save(out, format=fmt, **options)
    return out.getvalue(), fmt


def preview(path: Path, spec: str, max_pixels: int) -> tuple[bytes, str]:
    """`preview=webp;90` / `jpeg;80`: the image re-encoded smaller; returns (bytes, content type)."""
    fmt, _, quality = spec.partition(";")
    fmt = fmt.strip().lower()
    if fmt not in ("webp", "jpeg", "jpg"):
        raise ImageRejected(f"preview format must be webp or jpeg, got {fmt!r}")
    try:
        q = int(quality) if quality else 90
    except ValueError as exc:
        raise ImageRejected(f"preview quality must be an integer, got {quality!r}") from exc
    image = open_image(path, max_pixels)
    out = io.BytesIO()
    if fmt == "webp":
        image.save(out, format="WEBP", quality=max(1, min(q, 100)))
        return out.getvalue(), "image/webp"
    image.convert("RGB").save(out, format="JPEG", quality=max(1, min(q, 95)))
    return out.getvalue(), "image/jpeg"


def channel(path: Path, which: str, max_pixels: int) -> bytes:
    """`channel=rgb`: the colour without alpha; `channel=a`: the alpha alone (on black) as an RGBA PNG."""
    from PIL import Image

    image = open_image(path, max_pixels)
    out = io.BytesIO()
    if which == "rgb":
        image.convert("RGB").save(out, format="PNG")
    elif which == "a":
        rgba = image.convert("RGBA")
        alpha_only = Image.new("RGBA", rgba.size)
        alpha_only.putalpha(rgba.getchannel("A"))
        alpha_only.save(out, format="PNG")
    else:
        raise ImageRejected(f"channel must be rgb or a, got {which!r}")
    return out.getvalue()


def apply_mask(original: Path, mask: bytes, max_pixels: int) -> bytes:
    """The original image with the mask's alpha as its own (resized to fit), as PNG: what the mask editor saves."""
    from PIL import Image

    base = open_image(original, max_pixels).convert("RGBA")
    alpha = open_image(mask, max_pixels).convert("RGBA").getchannel("A")
    if alpha.size != base.size:
        alpha = alpha.resize(base.size, Image.Resampling.LANCZOS)
    base.putalpha(alpha)
    out = io.BytesIO()
    base.save(out, format="PNG")
    return out.getvalue()
