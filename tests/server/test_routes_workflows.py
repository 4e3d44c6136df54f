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
