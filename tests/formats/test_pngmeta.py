"""Workflows embedded in images, written with Pillow the way image-saving tools write them."""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from formats.pngmeta import ImageMetaError, png_text_chunks, read_embedded_workflow, read_image_workflow

PROMPT = {"1": {"class_type": "Save", "inputs": {"filename_prefix": "x"}}}
WORKFLOW = {"nodes": [{"id": 1, "type": "Save"}], "links": [], "extra": {"ünïcode": "✓"}}


def png_bytes(info: PngInfo) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def test_text_chunks_of_each_kind(tmp_path: Path) -> None:
    info = PngInfo()
    info.add_text("prompt", json.dumps(PROMPT))  # tEXt
    info.add_text("workflow", json.dumps(WORKFLOW, ensure_ascii=False), zip=True)  # iTXt, compressed
    info.add_text("comment", "plain", zip=True)  # latin-1 and zip -> zTXt
    path = tmp_path / "img.png"
    path.write_bytes(png_bytes(info))
    texts = png_text_chunks(path.read_bytes())
    assert texts["comment"] == "plain"
    embedded = read_image_workflow(path)
    assert embedded.prompt == PROMPT
    assert embedded.workflow == WORKFLOW


def test_png_without_workflow_and_with_broken_json() -> None:
    info = PngInfo()
    info.add_text("prompt", "{not json")
    embedded = read_embedded_workflow(png_bytes(info))
    assert embedded.prompt is None and embedded.workflow is None


def test_not_an_image_and_truncated_png() -> None:
    with pytest.raises(ImageMetaError):
        read_embedded_workflow(b"GIF89a....")
    info = PngInfo()
    info.add_text("prompt", json.dumps(PROMPT))
    data = png_bytes(info)
    with pytest.raises(ImageMetaError, match="truncated"):
        png_text_chunks(data[:40])


def chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def test_oversized_or_damaged_chunks_are_skipped_without_hiding_the_others() -> None:
    bomb = chunk(b"zTXt", b"workflow\x00\x00" + zlib.compress(b"a" * (65 * 1024 * 1024)))
    broken = chunk(b"zTXt", b"other\x00\x00not zlib at all")
    good = chunk(b"tEXt", b"prompt\x00" + json.dumps(PROMPT).encode())
    data = b"\x89PNG\r\n\x1a\n" + bomb + broken + good + chunk(b"IEND", b"")
    assert png_text_chunks(data) == {"prompt": json.dumps(PROMPT)}


@pytest.mark.parametrize("fmt", ["WEBP", "JPEG"])
def test_exif_strings_in_webp_and_jpeg(fmt: str) -> None:
    exif = Image.Exif()
    exif[0x010F] = "workflow:" + json.dumps(WORKFLOW)
    exif[0x0110] = "prompt:" + json.dumps(PROMPT)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format=fmt, exif=exif.tobytes())
    embedded = read_embedded_workflow(buf.getvalue())
    assert embedded.prompt == PROMPT
    assert embedded.workflow == WORKFLOW


def test_exif_user_comment() -> None:
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    ifd[0x9286] = b"UNICODE\x00" + ("prompt:" + json.dumps(PROMPT)).encode("utf-16-be")
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG", exif=exif.tobytes())
    assert read_embedded_workflow(buf.getvalue()).prompt == PROMPT
