"""Reading and writing image files: PNGs with the workflow embedded, and images/masks as tensors.

PNG text chunks `prompt` (the API-format workflow) and `workflow` (the canvas workflow) are how shared images
carry the graph that made them; `read_png_workflow` reads them back without decoding any pixels.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from formats.pngmeta import WORKFLOW_KEYS, ImageMetaError, png_text_chunks

if TYPE_CHECKING:
    import numpy as np
    import torch

PngMetadataError = ImageMetaError  # the name this module's callers know


def text_chunks(prompt: Any = None, extra_pnginfo: Any = None) -> dict[str, str]:
    """The text chunks to embed: `prompt` as JSON, and each key of extra_pnginfo (`workflow`, ...) as its own."""
    chunks: dict[str, str] = {}
    if prompt is not None:
        chunks["prompt"] = json.dumps(prompt)
    if isinstance(extra_pnginfo, Mapping):
        for key, value in extra_pnginfo.items():
            chunks[str(key)] = json.dumps(value)
    return chunks


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """One IMAGE item [H, W, C] in 0..1 as uint8 pixels: `clip(255 * x)` truncated (0.5 -> 127), as the reference
    engine saves them, so files and the tools that compare them agree with it byte for byte."""
    import numpy as np

    array = image.detach().float().cpu().numpy()
    return np.clip(array * 255.0, 0, 255).astype(np.uint8)


def encode_png(pixels: np.ndarray, text: Mapping[str, str] | None = None, compress_level: int = 4) -> bytes:
    """PNG bytes of uint8 pixels [H, W, C] (C = 1, 3 or 4) with the given text chunks."""
    from PIL import Image, PngImagePlugin

    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", pnginfo=info, compress_level=compress_level)
    return buffer.getvalue()


def read_png_text(source: str | Path | bytes) -> dict[str, str]:
    """All readable tEXt, zTXt and iTXt chunks of a PNG (path or bytes) as {keyword: text}; pixels not decoded.

    The parser lives in `formats.pngmeta`, shared with workflow-file loading so there is one of it.
    """
    data = source if isinstance(source, bytes | bytearray) else Path(source).read_bytes()
    return png_text_chunks(bytes(data))


def read_png_workflow(source: str | Path | bytes) -> dict[str, Any]:
    """The `prompt` (API format) and `workflow` (canvas format) a PNG carries, parsed from JSON.

    Keys are present only when the chunk exists and holds valid JSON; {} for a PNG without them. Raises
    PngMetadataError for data that is not a PNG.
    """
    text = read_png_text(source)
    found: dict[str, Any] = {}
    for key in WORKFLOW_KEYS:
        if key in text:
            try:
                found[key] = json.loads(text[key])
            except ValueError:
                continue
    return found


def load_image(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """An image file as IMAGE [B, H, W, 3] and MASK [B, H, W] (1 where transparent).

    Every frame of an animated or multi-page file of the first frame's size becomes a batch item. Without
    transparency the mask is a zero 64x64 per frame, as the ecosystem's loader returns.
    """
    import numpy as np
    import torch
    from PIL import ImageOps, ImageSequence

    images: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    with _open(path) as opened:
        frames = [opened] if opened.format == "MPO" else ImageSequence.Iterator(opened)
        size = None
        for frame in frames:
            frame = ImageOps.exif_transpose(frame) or frame
            if size is None:
                size = frame.size
            elif frame.size != size:
                continue
            images.append(_rgb(frame))
            alpha = _alpha(frame)
            masks.append(1.0 - alpha if alpha is not None else np.zeros((64, 64), dtype=np.float32))
    if not images:
        raise ValueError(f"{path.name}: the file holds no image frames")
    if any(m.shape != masks[0].shape for m in masks):
        masks = [m if m.shape == images[0].shape[:2] else np.zeros(images[0].shape[:2], np.float32) for m in masks]
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(masks))


def _open(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read {path.name!r} as an image: {exc}") from exc


def _rgb(frame: Any) -> np.ndarray:
    """RGB float32 [H, W, 3] in 0..1; 16-bit and integer grey images keep their precision."""
    import numpy as np

    if frame.mode.startswith("I") or frame.mode == "F":
        grey = np.asarray(frame, dtype=np.float32)
        if frame.mode.startswith("I"):
            grey = grey / (65535.0 if frame.mode.startswith("I;16") or grey.max(initial=0) > 255 else 255.0)
        return np.repeat(np.clip(grey, 0.0, 1.0)[:, :, None], 3, axis=2)
    return np.asarray(frame.convert("RGB"), dtype=np.float32) / 255.0


def _alpha(frame: Any) -> np.ndarray | None:
    import numpy as np

    if "A" in frame.getbands():
        return np.asarray(frame.getchannel("A"), dtype=np.float32) / 255.0
    if frame.mode == "P" and "transparency" in frame.info:
        return np.asarray(frame.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
    return None


CHANNELS = ("alpha", "red", "green", "blue")


def load_mask(path: Path, channel: str) -> torch.Tensor:
    """One channel of an image file's first frame as MASK [1, H, W]; `alpha` is inverted (1 = transparent).

    `alpha` of a file without transparency gives a zero 64x64 mask; a grey image's grey level is all three colours.
    """
    import numpy as np
    import torch
    from PIL import ImageOps

    band = {"alpha": "A", "red": "R", "green": "G", "blue": "B"}.get(channel)
    if band is None:
        raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
    with _open(path) as opened:
        frame = ImageOps.exif_transpose(opened) or opened
        if band == "A":
            alpha = _alpha(frame)
            if alpha is None:
                return torch.zeros((1, 64, 64), dtype=torch.float32)
            mask = 1.0 - alpha
        else:
            mask = _rgb(frame)[:, :, "RGB".index(band)]
    return torch.from_numpy(np.ascontiguousarray(mask)).unsqueeze(0)
