"""/view and the uploads: conversions, naming, and every way out of the folders, attempted."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from typing import Any

import pytest
from PIL import Image

from tests.server.conftest import Running


def png(color: tuple[int, ...] = (10, 20, 30, 255), size: tuple[int, int] = (6, 4), **info: str) -> bytes:
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    for key, value in info.items():
        meta.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGBA", size, color).save(out, format="PNG", pnginfo=meta)
    return out.getvalue()


def bomb() -> bytes:
    """A tiny PNG whose header claims 100000 x 100000 pixels."""
    data = bytearray(png(size=(1, 1)))
    ihdr = 8 + 8  # signature, then length + type of IHDR
    data[ihdr : ihdr + 8] = struct.pack(">II", 100000, 100000)
    crc = zlib.crc32(bytes(data[12 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


async def upload(srv: Running, data: bytes, name: str = "pic.png", path: str = "/upload/image", **fields: str) -> Any:
    """A multipart body written by hand, so that file names reach the server exactly as given."""
    boundary = "loomtestboundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
             "Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n"]  # fmt: skip
    for key, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode())
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with srv.http.post(srv.url + path, data=body, headers=headers) as r:
        return r.status, await r.json()


async def test_upload_names_and_view(server: Running) -> None:
    status, body = await upload(server, png(), subfolder="refs")
    assert status == 200 and body == {"name": "pic.png", "subfolder": "refs", "type": "input"}
    assert (server.state.folders.input / "refs" / "pic.png").is_file()
    assert (await upload(server, png(), subfolder="refs"))[1]["name"] == "pic.png"  # same content: same file
    assert (await upload(server, png((1, 1, 1, 255)), subfolder="refs"))[1]["name"] == "pic (1).png"
    assert (await upload(server, png((2, 2, 2, 255)), subfolder="refs", overwrite="true"))[1]["name"] == "pic.png"
    params = {"filename": "pic.png", "subfolder": "refs", "type": "input"}
    async with server.http.get(server.url + "/api/view", params=params) as r:
        assert r.status == 200 and Image.open(io.BytesIO(await r.read())).getpixel((0, 0)) == (2, 2, 2, 255)
    status, body = await upload(server, png(), type="temp")
    assert status == 200 and (server.state.folders.temp / "pic.png").is_file()


async def test_upload_keeps_png_text_and_strips_trailing_payload(server: Running) -> None:
    data = png(workflow='{"nodes": []}') + b"<script>alert(1)</script>"
    status, _ = await upload(server, data, name="poly.png")
    assert status == 200
    stored = (server.state.folders.input / "poly.png").read_bytes()
    assert b"<script>" not in stored
    assert Image.open(io.BytesIO(stored)).info["workflow"] == '{"nodes": []}'


@pytest.mark.parametrize("data", [b"<html>not an image</html>", b"", b"\x89PNG\r\n\x1a\n broken"])
async def test_upload_refuses_non_images(server: Running, data: bytes) -> None:
    status, body = await upload(server, data)
    assert status == 400 and body["error"]["type"] == "invalid_image"
    assert not (server.state.folders.input / "pic.png").exists()


async def test_upload_refuses_decompression_bomb(server: Running) -> None:
    status, body = await upload(server, bomb(), name="bomb.png")
    assert status == 400 and "pixels" in body["error"]["message"]
    assert not (server.state.folders.input / "bomb.png").exists()


async def test_upload_size_limit(make_server) -> None:
    srv = await make_server(max_upload_bytes=20_000)
    noise = Image.frombytes("RGB", (100, 100), os.urandom(30000))
    out = io.BytesIO()
    noise.save(out, format="PNG")
    status, _ = await upload(srv, out.getvalue())
    assert status == 413
    assert not (srv.state.folders.input / "pic.png").exists()


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("../escape.png", {}),
        ("/tmp/abs.png", {}),
        ("ok.png", {"subfolder": "../.."}),
        ("ok.png", {"subfolder": "/etc"}),
        ("ok.png", {"subfolder": "a\x00b"}),
        ("ok.png", {"type": "models"}),
        ("", {}),
    ],
)
async def test_upload_confined(server: Running, name: str, fields: dict[str, str]) -> None:
    status, body = await upload(server, png(), name=name, **fields)
    assert status == 400 and "error" in body
    assert not (server.tmp / "escape.png").exists()


async def test_upload_through_symlink_refused(server: Running, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (server.state.folders.input / "link").symlink_to(outside)
    status, _ = await upload(server, png(), subfolder="link")
    assert status == 400 and not any(outside.iterdir())


@pytest.mark.parametrize(
    "params",
    [
        {"filename": "../user/loom.db"},
        {"filename": "loom.db", "subfolder": "../user"},
        {"filename": "/etc/passwd"},
        {"filename": "x.png", "subfolder": "/etc"},
        {"filename": "x\x00.png"},
        {"filename": "x.png", "type": "user"},
        {"filename": "..\\user\\loom.db"},
    ],
)
async def test_view_confined(server: Running, params: dict[str, str]) -> None:
    async with server.http.get(server.url + "/view", params=params) as r:
        assert r.status == 400
        assert b"SQLite" not in await r.read()


async def test_view_symlink_escape_and_missing(server: Running, tmp_path_factory: pytest.TempPathFactory) -> None:
    secret = tmp_path_factory.mktemp("secret") / "key.png"
    secret.write_bytes(png())
    (server.state.folders.output / "leak.png").symlink_to(secret)
    async with server.http.get(server.url + "/view", params={"filename": "leak.png"}) as r:
        assert r.status == 400
    async with server.http.get(server.url + "/view", params={"filename": "nothere.png"}) as r:
        assert r.status == 404


async def test_view_preview_and_channels(server: Running) -> None:
    (server.state.folders.output / "c.png").write_bytes(png((200, 100, 50, 77)))
    async with server.http.get(server.url + "/view", params={"filename": "c.png", "preview": "webp;50"}) as r:
        assert r.status == 200 and r.content_type == "image/webp"
        assert Image.open(io.BytesIO(await r.read())).format == "WEBP"
    async with server.http.get(server.url + "/view", params={"filename": "c.png", "preview": "jpeg;80"}) as r:
        assert r.content_type == "image/jpeg"
    async with server.http.get(server.url + "/view", params={"filename": "c.png", "channel": "rgb"}) as r:
        assert Image.open(io.BytesIO(await r.read())).mode == "RGB"
    async with server.http.get(server.url + "/view", params={"filename": "c.png", "channel": "a"}) as r:
        image = Image.open(io.BytesIO(await r.read()))
        assert image.getpixel((0, 0)) == (0, 0, 0, 77)
    async with server.http.get(server.url + "/view", params={"filename": "c.png", "preview": "gif;9"}) as r:
        assert r.status == 400
    async with server.http.get(server.url + "/view", params={"filename": "c.png", "channel": "z"}) as r:
        assert r.status == 400


async def test_view_never_renders_html(server: Running) -> None:
    (server.state.folders.output / "x.html").write_text("<script>alert(1)</script>")
    async with server.http.get(server.url + "/view", params={"filename": "x.html"}) as r:
        assert "sandbox" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"


async def test_upload_mask_applies_alpha_to_original(server: Running) -> None:
    (server.state.folders.output / "orig.png").write_bytes(png((200, 100, 50, 255), size=(6, 4)))
    mask = png((0, 0, 0, 40), size=(3, 2))
    ref = json.dumps({"filename": "orig.png", "subfolder": "", "type": "output"})
    status, body = await upload(server, mask, name="orig_mask.png", path="/upload/mask", original_ref=ref)
    assert status == 200 and body["name"] == "orig_mask.png"
    result = Image.open(server.state.folders.input / "orig_mask.png")
    assert result.size == (6, 4) and result.getpixel((0, 0)) == (200, 100, 50, 40)
    for bad in ("not json", json.dumps({"filename": "../user/loom.db"}), json.dumps({"filename": "none.png"})):
        status, _ = await upload(server, mask, name="m.png", path="/upload/mask", original_ref=bad)
        assert status in (400, 404)


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (6, 4), (200, 10, 10)).save(out, format="JPEG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "kept"),
    [
        ("x.html", png(), "x.png"),
        ("noext", png(), "noext.png"),
        ("photo.png", jpeg(), "photo.jpg"),
        ("photo.JPEG", jpeg(), "photo.JPEG"),
        ("shot.svg", png(), "shot.png"),
    ],
)
async def test_upload_name_ends_as_its_decoded_format(server: Running, name: str, data: bytes, kept: str) -> None:
    status, body = await upload(server, data, name=name)
    assert status == 200 and body["name"] == kept
    assert (server.state.folders.input / kept).is_file()
    assert kept == name or not (server.state.folders.input / name).exists()
