"""Templates, pack example workflows and translations through a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.packs import PackSummary
from server.state import ROOT
from tests.server.conftest import Running


def make_pack(root: Path, name: str) -> PackSummary:
    pack = root / name
    (pack / "example_workflows").mkdir(parents=True)
    (pack / "example_workflows" / "demo.json").write_text(json.dumps({"nodes": [], "links": []}))
    (pack / "locales" / "en").mkdir(parents=True)
    (pack / "locales" / "en" / "main.json").write_text(json.dumps({"menu": {name: "Menu of " + name}}))
    (pack / "locales" / "en" / "nodeDefs.json").write_text(json.dumps({f"{name}Node": {"display_name": name}}))
    (pack / "locales" / "fr").mkdir(parents=True)
    (pack / "locales" / "fr" / "settings.json").write_text("{broken")
    return PackSummary(name=name, path=str(pack), status="ok")


@pytest.mark.parametrize("prefix", ["", "/api"])
async def test_index_lists_loom_examples_with_titles(make_server, prefix: str) -> None:
    srv: Running = await make_server(workflows_root=ROOT / "workflows")
    async with srv.http.get(f"{srv.url}{prefix}/templates/index.json") as r:
        assert r.status == 200 and r.content_type == "application/json"
        (category,) = await r.json()
    templates = {t["name"]: t for t in category["templates"]}
    assert "txt2img" in templates and not any(name.endswith(".api") for name in templates)
    assert templates["txt2img"]["title"] == "Text to image"
    assert all(t["description"] for t in templates.values())
    async with srv.http.get(f"{srv.url}/templates/txt2img.json") as r:
        assert r.status == 200
        assert (await r.json())["extra"]["info"]["name"] == "txt2img"


async def test_template_misses_and_escapes(make_server, tmp_path: Path) -> None:
    root = tmp_path / "examples"
    root.mkdir()
    (root / "a.json").write_text(json.dumps({"nodes": [], "extra": {"info": {"title": "A"}}}))
    (root / "a.api.json").write_text("{}")
    (root / "bad.json").write_text("{not json")
    (tmp_path / "secret.json").write_text("{}")
    srv: Running = await make_server(workflows_root=root)
    async with srv.http.get(srv.url + "/templates/index.json") as r:
        assert [t["name"] for t in (await r.json())[0]["templates"]] == ["a"]
    for name in ("missing", "a.api", "..%2Fsecret"):
        async with srv.http.get(f"{srv.url}/templates/{name}.json") as r:
            assert r.status in (400, 404), name
            assert "error" in await r.json()


async def test_pack_templates_and_i18n(server: Running) -> None:
    server.state.packs = [
        make_pack(server.tmp / "custom_nodes", "alpha"),
        make_pack(server.tmp / "custom_nodes", "beta"),
    ]
    async with server.http.get(server.url + "/api/workflow_templates") as r:
        assert await r.json() == {"alpha": ["demo"], "beta": ["demo"]}
    async with server.http.get(server.url + "/api/workflow_templates/alpha/demo.json") as r:
        assert r.status == 200 and (await r.json())["nodes"] == []
    for path in ("/workflow_templates/alpha/missing.json", "/workflow_templates/nope/demo.json",
                 "/workflow_templates/alpha/..%2F..%2Fsecret.json"):  # fmt: skip
        async with server.http.get(server.url + path) as r:
            assert r.status in (400, 404), path
    async with server.http.get(server.url + "/api/i18n") as r:
        i18n = await r.json()
    assert i18n == {
        "en": {
            "menu": {"alpha": "Menu of alpha", "beta": "Menu of beta"},
            "nodeDefs": {"alphaNode": {"display_name": "alpha"}, "betaNode": {"display_name": "beta"}},
        }
    }


async def test_no_packs(server: Running) -> None:
    async with server.http.get(server.url + "/workflow_templates") as r:
        assert await r.json() == {}
    async with server.http.get(server.url + "/i18n") as r:
        assert await r.json() == {}


async def test_token_mode(make_server) -> None:
    srv = await make_server(auth_token="s3cret", workflows_root=ROOT / "workflows")
    paths = ("/templates/index.json", "/templates/txt2img.json", "/workflow_templates", "/api/i18n")
    for path in paths:
        async with srv.http.get(srv.url + path) as r:
            assert r.status == 401, path
        async with srv.http.get(srv.url + path, headers={"Authorization": "Bearer s3cret"}) as r:
            assert r.status == 200, path
