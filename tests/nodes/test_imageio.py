"""PNG text chunks: written by encode_png, read back by read_png_workflow without decoding pixels."""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from nodes.imageio import PngMetadataError, encode_png, read_png_text, read_png_workflow, text_chunks

PROMPT = {"3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["8", 0]}}}
WORKFLOW = {"last_node_id": 9, "nodes": [{"id": 3, "type": "SaveImage", "widgets_values": ["x"]}]}


def test_text_chunks_give_each_extra_key_its_own_chunk() -> None:
    chunks = text_chunks(PROMPT, {"workflow": WORKFLOW, "other": 1})
    assert chunks == {"prompt": json.dumps(PROMPT), "workflow": json.dumps(WORKFLOW), "other": "1"}
    assert text_chunks(None, None) == {}


def test_encode_png_round_trip() -> None:
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    data = encode_png(pixels, text_chunks(PROMPT, {"workflow": WORKFLOW}))
    assert read_png_workflow(data) == {"prompt": PROMPT, "workflow": WORKFLOW}
    assert read_png_text(data).keys() == {"prompt", "workflow"}
    with Image.open(io.BytesIO(data)) as img:
        assert np.array_equal(np.asarray(img), pixels)


def test_read_png_workflow_without_chunks_and_on_other_data(tmp_path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="PNG")
    assert read_png_workflow(buffer.getvalue()) == {}
    with pytest.raises(PngMetadataError):
        read_png_workflow(b"GIF89a not a png")
    with pytest.raises(PngMetadataError, match="truncated"):
        read_png_workflow(buffer.getvalue()[:20])


def test_read_png_workflow_reads_compressed_and_international_chunks() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(PROMPT), zip=True)  # zTXt
    info.add_itxt("workflow", json.dumps({"title": "café ☕"}, ensure_ascii=False), zip=True)  # iTXt
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="PNG", pnginfo=info)
    assert read_png_workflow(buffer.getvalue()) == {"prompt": PROMPT, "workflow": {"title": "café ☕"}}


def test_read_png_workflow_leaves_out_chunks_that_are_not_json() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", "{not json")
    info.add_text("workflow", json.dumps(WORKFLOW))
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="PNG", pnginfo=info)
    assert read_png_workflow(buffer.getvalue()) == {"workflow": WORKFLOW}


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_damaged_and_oversized_text_chunks_are_skipped() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    png = buffer.getvalue()
    bomb = zlib.compress(b"0" * (65 * 1024 * 1024), 9)
    extra = (
        _chunk(b"zTXt", b"prompt\x00\x00" + bomb)
        + _chunk(b"iTXt", b"broken\x00")
        + _chunk(b"tEXt", b"workflow\x00" + json.dumps(WORKFLOW).encode())
    )
    data = png[:33] + extra + png[33:]  # after the signature and IHDR
    assert read_png_workflow(data) == {"workflow": WORKFLOW}
