"""Preview images packs hand to progress reports, in whichever form they come, encoded as Loom's Preview."""

from __future__ import annotations

import io
from typing import Any

from engine.events import Preview

MAX_PREVIEW_SIZE = 512


def encode_preview(preview: Any, max_size: int | None = MAX_PREVIEW_SIZE) -> Preview | None:
    """A Preview from a Preview, the ecosystem's `(format, PIL image, max size)` tuple, a PIL image, or an IMAGE
    tensor (`[B, H, W, C]` or `[H, W, C]` in 0..1; the first image of a batch). None stays None; the image is
    shrunk to fit `max_size` (None: kept as it is)."""
    if preview is None or isinstance(preview, Preview):
        return preview
    fmt = "JPEG"
    image = preview
    if isinstance(preview, tuple) and len(preview) >= 2:
        fmt = "PNG" if str(preview[0]).upper() == "PNG" else "JPEG"
        image = preview[1]
        if len(preview) > 2 and preview[2]:
            max_size = int(preview[2])
    if not hasattr(image, "save"):
        image = _tensor_image(image)
    if max_size and max(image.size) > max_size:
        image = image.copy()
        image.thumbnail((max_size, max_size))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=fmt)
    return Preview(fmt, buffer.getvalue())


def _tensor_image(value: Any) -> Any:
    from PIL import Image

    shape = getattr(value, "shape", None)
    if shape is None or len(shape) not in (3, 4):
        raise TypeError(f"a preview must be a PIL image or an IMAGE tensor, got {type(value).__name__}")
    if len(shape) == 4:
        value = value[0]
    pixels = (value.detach().float().clamp(0, 1) * 255).round().to("cpu").numpy().astype("uint8")
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    return Image.fromarray(pixels)
