"""Workflows embedded in images: PNG text chunks, and EXIF in WebP/JPEG, read with the standard library only.

Images saved by the ecosystem carry the API format under the key `prompt` and the canvas format under `workflow`:
as PNG tEXt/iTXt/zTXt chunks, or as EXIF strings of the form `workflow:{...}` / `prompt:{...}` (in Make, Model,
ImageDescription or UserComment) for WebP and JPEG.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WORKFLOW_KEYS = ("prompt", "workflow")
_TEXT_LIMIT = 64 * 1024 * 1024  # no workflow is this big; a zip bomb in a zTXt chunk would be


class ImageMetaError(ValueError):
    """A file that is not an image Loom can read metadata from, or whose metadata is broken."""


@dataclass(frozen=True, slots=True)
class EmbeddedWorkflow:
    """What an image carries: the API format (`prompt`) and/or the canvas format (`workflow`), parsed, and the
    A1111-style generation `parameters` text other tools write (it records model hashes)."""

    prompt: dict[str, Any] | None
    workflow: dict[str, Any] | None
    parameters: str | None = None


def png_text_chunks(data: bytes) -> dict[str, str]:
    """Every readable text chunk of a PNG (tEXt, zTXt, iTXt) by keyword; the first of a repeated keyword wins.

    Raises ImageMetaError for data that is not a PNG or is cut short; damaged text chunks are skipped."""
    if not data.startswith(PNG_SIGNATURE):
        raise ImageMetaError("not a PNG file")
    texts: dict[str, str] = {}
    pos = len(PNG_SIGNATURE)
    while pos < len(data):
        header = data[pos : pos + 8]
        length, kind = struct.unpack(">I4s", header) if len(header) == 8 else (0, b"")
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if not kind or len(body) < length:
            raise ImageMetaError("truncated PNG chunk")
        if kind == b"IEND":
            break
        try:
            parsed = _text_chunk(kind, body)
        except (ImageMetaError, UnicodeDecodeError):
            continue  # a damaged (or bomb-sized) text chunk must not hide the others
        if parsed is not None:
            texts.setdefault(*parsed)
    return texts


def _text_chunk(kind: bytes, body: bytes) -> tuple[str, str] | None:
    if kind not in (b"tEXt", b"zTXt", b"iTXt"):
        return None
    key, sep, rest = body.partition(b"\x00")
    if not sep:
        return None
    keyword = key.decode("latin-1")
    if kind == b"tEXt":
        return keyword, rest.decode("latin-1")
    if kind == b"zTXt":
        return keyword, _inflate(rest[1:]).decode("latin-1")
    if len(rest) < 2:
        return None
    compressed, text = rest[0], rest[2:]
    _language, _, text = text.partition(b"\x00")
    _translated, _, text = text.partition(b"\x00")
    return keyword, (_inflate(text) if compressed else text).decode("utf-8", errors="replace")


def _inflate(data: bytes) -> bytes:
    decoder = zlib.decompressobj()
    try:
        out = decoder.decompress(data, _TEXT_LIMIT)
    except zlib.error as exc:
        raise ImageMetaError(f"corrupt compressed text chunk: {exc}") from exc
    if decoder.unconsumed_tail:
        raise ImageMetaError("compressed text chunk is too large")
    return out


# EXIF tags that the ecosystem fills with "workflow:..." / "prompt:..." strings.
_EXIF_STRING_TAGS = {0x010E, 0x010F, 0x0110, 0x9286}
_EXIF_IFD_POINTER = 0x8769


def exif_strings(tiff: bytes) -> list[str]:
    """String values of the interesting tags in IFD0 and the Exif sub-IFD of a TIFF-structured EXIF block."""
    if tiff.startswith(b"Exif\x00\x00"):
        tiff = tiff[6:]
    if tiff[:2] == b"II":
        order = "<"
    elif tiff[:2] == b"MM":
        order = ">"
    else:
        return []
    out: list[str] = []
    try:
        (ifd,) = struct.unpack(order + "I", tiff[4:8])
        pending, seen = [ifd], set()
        while pending:
            offset = pending.pop()
            if offset in seen or offset + 2 > len(tiff):
                continue
            seen.add(offset)
            (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
            for i in range(count):
                at = offset + 2 + 12 * i
                tag, kind, n, value = struct.unpack(order + "HHI4s", tiff[at : at + 12])
                if tag == _EXIF_IFD_POINTER:
                    pending.append(struct.unpack(order + "I", value)[0])
                elif tag in _EXIF_STRING_TAGS and kind in (1, 2, 7):  # BYTE, ASCII, UNDEFINED
                    raw = value[:n] if n <= 4 else tiff[struct.unpack(order + "I", value)[0] :][:n]
                    out.append(_exif_text(tag, raw))
    except struct.error:
        return out
    return out


def _exif_text(tag: int, raw: bytes) -> str:
    if tag == 0x9286 and len(raw) >= 8:  # UserComment: an 8-byte character-code prefix, then the text
        code, raw = raw[:8], raw[8:]
        if code.startswith(b"UNICODE"):
            encoding = "utf-16-be" if raw[:1] == b"\x00" else "utf-16-le"
            return raw.decode(encoding, errors="replace").rstrip("\x00")
    return raw.decode("utf-8", errors="replace").rstrip("\x00")


def webp_exif(data: bytes) -> bytes | None:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ImageMetaError("not a WebP file")
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if kind == b"EXIF":
            return data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)
    return None


def jpeg_exif(data: bytes) -> bytes | None:
    if data[:2] != b"\xff\xd8":
        raise ImageMetaError("not a JPEG file")
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no metadata after these
            break
        (size,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos + 4 : pos + 2 + size]
        if marker == 0xE1 and segment.startswith(b"Exif\x00\x00"):
            return segment
        pos += 2 + size
    return None


def image_texts(data: bytes) -> dict[str, str]:
    """The workflow-carrying strings of a PNG, WebP or JPEG, by key (`prompt`, `workflow`, ...)."""
    if data.startswith(PNG_SIGNATURE):
        return png_text_chunks(data)
    if data[:4] == b"RIFF":
        exif = webp_exif(data)
    elif data[:2] == b"\xff\xd8":
        exif = jpeg_exif(data)
    else:
        raise ImageMetaError("not a PNG, WebP or JPEG image")
    texts: dict[str, str] = {}
    for text in exif_strings(exif or b""):
        key, sep, value = text.partition(":")
        if sep and key.strip().lower() in WORKFLOW_KEYS:
            texts.setdefault(key.strip().lower(), value)
    return texts


def read_embedded_workflow(data: bytes) -> EmbeddedWorkflow:
    """The workflows an image carries; a key whose text is not a JSON object counts as absent."""
    texts = image_texts(data)
    parsed: dict[str, dict[str, Any] | None] = {}
    for key in WORKFLOW_KEYS:
        try:
            value = json.loads(texts[key]) if key in texts else None
        except json.JSONDecodeError:
            value = None
        parsed[key] = value if isinstance(value, dict) else None
    return EmbeddedWorkflow(prompt=parsed["prompt"], workflow=parsed["workflow"], parameters=texts.get("parameters"))


def read_image_workflow(path: Path) -> EmbeddedWorkflow:
    return read_embedded_workflow(Path(path).read_bytes())
