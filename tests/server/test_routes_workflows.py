"""GET /workflows lists the example workflows; GET /workflows/{name} returns one, never a file outside."""

from __future__ import annotations

import json
from pathlib import Path

from tests.server.conftest import Running


def write_examples(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "txt2img.json").write_text(json.dumps({"nodes": [], "links": []}))
    (root / "sub" / "hires.json").write_text(json.dumps({"nodes": [], "links": [], "extra": {"x": 1}}))
    (root / "README.md").write_text("not a workflow")


async def test_lists_and_serves_examples(make_server, tmp_path: Path) -> None:
    root = tmp_path / "examples"
    write_examples(root)
    srv: Running = await make_server(workflows_root=root)
    for prefix in ("", "/api"):
        async with srv.http.get(f"{srv.url}{prefix}/workflows") as r:
            assert r.status == 200
            assert await r.json() == ["sub/hires.json", "txt2img.json"]
    async with srv.http.get(f"{srv.url}/api/workflows/sub/hires.json") as r:
        assert r.status == 200
        assert (await r.json())["extra"] == {"x": 1}


async def test_refuses_other_files_and_escapes(make_server, tmp_path: Path) -> None:
    root = tmp_path / "examples"
    write_examples(root)
    (tmp_path / "secret.json").write_text("{}")
    srv: Running = await make_server(workflows_root=root)
    for name in ("README.md", "missing.json", "..%2Fsecret.json", "%2E%2E/secret.json"):
        async with srv.http.get(f"{srv.url}/workflows/{name}") as r:
            assert r.status == 404, name


async def test_no_examples_folder_lists_nothing(make_server, tmp_path: Path) -> None:
    srv: Running = await make_server(workflows_root=tmp_path / "absent")
    async with srv.http.get(f"{srv.url}/workflows") as r:
        assert await r.json() == []


CANVAS = {
    "last_node_id": 2,
    "last_link_id": 1,
    "nodes": [
        {"id": 1, "type": "TestNumber", "inputs": [], "outputs": [{"name": "INT", "type": "INT", "links": [1]}],
         "widgets_values": [7], "mode": 0},
        {"id": 2, "type": "TestSaveImage", "inputs": [{"name": "value", "type": "INT", "link": 1}], "outputs": [],
         "widgets_values": [], "mode": 0},
    ],
    "links": [[1, 1, 0, 2, 0, "INT"]],
    "version": 0.4,
}  # fmt: skip


async def test_convert_canvas_to_api(server: Running) -> None:
    for prefix in ("", "/api"):
        async with server.http.post(f"{server.url}{prefix}/workflow/convert", json=CANVAS) as r:
            assert r.status == 200
            api = await r.json()
        assert api == {
            "1": {"class_type": "TestNumber", "inputs": {"value": 7}},
            "2": {"class_type": "TestSaveImage", "inputs": {"value": ["1", 0], "prefix": "test"}},
        }
    async with server.http.post(server.url + "/workflow/convert", json=api) as r:  # already API format: as it is
        assert await r.json() == api


async def test_convert_errors_are_json(server: Running) -> None:
    unknown = {**CANVAS, "nodes": [*CANVAS["nodes"], {"id": 3, "type": "NoSuchNode", "inputs": [], "outputs": []}]}
    async with server.http.post(server.url + "/workflow/convert", json=unknown) as r:
        assert r.status == 400
        body = await r.json()
    assert "NoSuchNode" in body["error"]["message"]
    for data in ("{not json", "[1]", json.dumps({"nodes": "x"}), json.dumps({"a": 1})):
        async with server.http.post(server.url + "/workflow/convert", data=data) as r:
            assert r.status == 400, data
            assert "error" in await r.json()
    async with server.http.post(
        server.url + "/workflow/convert", json=CANVAS, headers={"Origin": "http://evil.example"}
    ) as r:
        assert r.status == 403


async def test_convert_needs_the_token(make_server) -> None:
    srv: Running = await make_server(auth_token="s3cret")
    async with srv.http.post(srv.url + "/workflow/convert", json=CANVAS) as r:
        assert r.status == 401
    async with srv.http.post(srv.url + "/workflow/convert?token=s3cret", json=CANVAS) as r:
        assert r.status == 401  # a query token never authorises a state-changing request
    async with srv.http.post(
        srv.url + "/workflow/convert", json=CANVAS, headers={"Authorization": "Bearer s3cret"}
    ) as r:
        assert r.status == 200 and (await r.json())["1"]["class_type"] == "TestNumber"
