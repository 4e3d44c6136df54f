"""The model library routes through a real server: folders, files with their path index, safetensors metadata."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tests.server.conftest import Running


def write_safetensors(path: Path, metadata: dict[str, str] | None) -> None:
    header: dict[str, object] = {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0\0\0\0")


@pytest.mark.parametrize("prefix", ["", "/api"])
async def test_library_lists_folders_with_paths(server: Running, prefix: str) -> None:
    async with server.http.get(f"{server.url}{prefix}/experiment/models") as r:
        assert r.status == 200
        library = {entry["name"]: entry["folders"] for entry in await r.json()}
    assert library["checkpoints"] == [str(server.tmp / "models" / "checkpoints")]
    assert {"loras", "vae", "controlnet"} <= set(library)


async def test_library_folder_lists_files_with_path_index(server: Running) -> None:
    extra = server.tmp / "more_loras"
    server.state.folders.add_model_path("loras", extra)
    write_safetensors(server.tmp / "models" / "loras" / "a.safetensors", None)
    write_safetensors(extra / "sub" / "b.safetensors", None)
    write_safetensors(extra / "a.safetensors", None)  # shadowed by the first path's file of the same name
    (extra / "notes.txt").write_text("not a model")
    async with server.http.get(server.url + "/api/experiment/models/loras") as r:
        files = await r.json()
    assert [(f["name"], f["pathIndex"]) for f in files] == [("a.safetensors", 0), ("sub/b.safetensors", 1)]
    assert files[0]["size"] > 0 and files[0]["modified"] > 0
    async with server.http.get(server.url + "/experiment/models/unet") as r:  # an alias of diffusion_models
        assert r.status == 200 and await r.json() == []
    async with server.http.get(server.url + "/experiment/models/nope") as r:
        assert r.status == 404 and "nope" in (await r.json())["error"]["message"]


async def test_view_metadata(server: Running) -> None:
    folder = server.tmp / "models" / "checkpoints"
    write_safetensors(folder / "with.safetensors", {"ss_network_dim": "4", "modelspec.title": "Demo"})
    write_safetensors(folder / "without.safetensors", None)
    (folder / "broken.safetensors").write_bytes(struct.pack("<Q", 1 << 40))
    (folder / "old.ckpt").write_bytes(b"pickle")
    async with server.http.get(server.url + "/api/view_metadata/checkpoints?filename=with.safetensors") as r:
        assert r.status == 200
        assert await r.json() == {"ss_network_dim": "4", "modelspec.title": "Demo"}
    for query, status in (
        ("filename=without.safetensors", 404),
        ("filename=missing.safetensors", 404),
        ("filename=old.ckpt", 400),
        ("filename=broken.safetensors", 400),
        ("filename=..%2F..%2Fuser%2Fx.safetensors", 404),
        ("", 400),
    ):
        async with server.http.get(server.url + "/view_metadata/checkpoints?" + query) as r:
            assert r.status == status, query
            assert "error" in await r.json()
    async with server.http.get(server.url + "/view_metadata/nope?filename=with.safetensors") as r:
        assert r.status == 404


async def test_token_required(make_server) -> None:
    srv = await make_server(auth_token="s3cret")
    for path in ("/experiment/models", "/experiment/models/checkpoints", "/view_metadata/checkpoints?filename=a"):
        async with srv.http.get(srv.url + path) as r:
            assert r.status == 401, path
    async with srv.http.get(srv.url + "/experiment/models", headers={"Authorization": "Bearer s3cret"}) as r:
        assert r.status == 200
