"""Node packs through a real server: /custom_nodes, front-end extensions, pack routes and messages, pack jobs."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from aiohttp import web

import compat
from engine.executor import Executor
from engine.folders import Folders
from engine.jobs import JobQueue
from engine.packs import load_packs
from engine.registry import NodeRegistry
from engine.store import Store
from server.app import create_app
from server.state import ServerConfig, ServerState
from server.wire import history_messages

GOOD_PACK = """
from aiohttp import web
from server import PromptServer

WEB_DIRECTORY = "./js"


@PromptServer.instance.routes.get("/pack_demo/hello")
async def hello(request):
    return web.json_response({"hello": "from pack_demo"})


class Shout:
    CATEGORY = "demo"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "hi"})}}

    def run(self, text):
        if text == "fail":
            raise ValueError("shout refused " + text)
        PromptServer.instance.send_sync("pack_demo.shouted", {"text": text.upper()})
        return {"ui": {"text": [text.upper()]}, "result": (text.upper(),)}


NODE_CLASS_MAPPINGS = {"Shout": Shout}
"""


@dataclass
class Served:
    url: str
    http: aiohttp.ClientSession

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(self.url + path) as r:
            body = await r.read()
            kind = r.headers.get("Content-Type", "")
            return r.status, json.loads(body) if "json" in kind else body.decode()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    packs = tmp_path / "custom_nodes"
    (packs / "pack_demo" / "js").mkdir(parents=True)
    (packs / "pack_demo" / "__init__.py").write_text(textwrap.dedent(GOOD_PACK))
    (packs / "pack_demo" / "js" / "demo.js").write_text("console.log('pack_demo');\n")
    (packs / "pack_broken.py").write_text("import loom_absent_module_q\n")
    folders = Folders.under(tmp_path / "loom")
    folders.ensure()
    registry = NodeRegistry()
    compat.install(compat.Host(folders, registry))
    summaries = load_packs(registry, [packs])
    extensions = {p.name: Path(p.web_directory) for p in summaries if p.web_directory}
    jobs = JobQueue(Store(tmp_path / "loom.db"), Executor(registry), history_messages)
    config = ServerConfig(web_root=tmp_path / "no-web")
    state = ServerState(config, registry, folders, jobs, None, extensions, packs=summaries)
    runner = web.AppRunner(create_app(state))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    http = aiohttp.ClientSession()
    try:
        yield Served(f"http://127.0.0.1:{runner.addresses[0][1]}", http)
    finally:
        await http.close()
        await runner.cleanup()
        compat.uninstall()


async def test_custom_nodes_lists_every_pack_with_its_status(served: Served) -> None:
    for prefix in ("", "/api"):
        status, body = await served.get(prefix + "/custom_nodes")
        assert status == 200 and body["enabled"] is True
        packs = {p["name"]: p for p in body["packs"]}
        assert packs["pack_demo"]["status"] == "ok" and packs["pack_demo"]["nodes"] == ["Shout"]
        assert packs["pack_broken"]["status"] == "failed"
        assert "loom_absent_module_q" in packs["pack_broken"]["error"] and packs["pack_broken"]["traceback"]
        assert body["clashes"] == []


async def test_front_end_extensions_are_listed_and_served(served: Served) -> None:
    status, urls = await served.get("/extensions")
    assert status == 200 and urls == ["/extensions/pack_demo/demo.js"]
    status, script = await served.get(urls[0])
    assert status == 200 and "pack_demo" in script
    assert (await served.get("/extensions/pack_demo/../__init__.py"))[0] == 404


async def test_pack_routes_are_mounted(served: Served) -> None:
    for prefix in ("", "/api"):
        status, body = await served.get(prefix + "/pack_demo/hello")
        assert (status, body) == (200, {"hello": "from pack_demo"})


async def test_pack_node_runs_as_a_job_and_its_messages_reach_the_client(served: Served) -> None:
    ws_url = served.url.replace("http://", "ws://") + "/ws?clientId=c1"
    async with websockets.connect(ws_url) as ws:
        async with served.http.post(
            served.url + "/prompt",
            json={"prompt": {"1": {"class_type": "Shout", "inputs": {"text": "hey"}}}, "client_id": "c1"},
        ) as r:
            assert r.status == 200
            prompt_id = (await r.json())["prompt_id"]
        messages = await until_done(ws, prompt_id)
    types = [m["type"] for m in messages]
    assert {"type": "pack_demo.shouted", "data": {"text": "HEY"}} in messages
    assert "execution_success" in types
    executed = next(m for m in messages if m["type"] == "executed")
    assert executed["data"]["output"] == {"text": ["HEY"]}


async def test_failing_pack_node_is_a_node_error_and_the_queue_goes_on(served: Served) -> None:
    ws_url = served.url.replace("http://", "ws://") + "/ws?clientId=c2"
    async with websockets.connect(ws_url) as ws:
        ids = []
        for text in ("fail", "ok"):
            async with served.http.post(
                served.url + "/prompt",
                json={"prompt": {"1": {"class_type": "Shout", "inputs": {"text": text}}}, "client_id": "c2"},
            ) as r:
                ids.append((await r.json())["prompt_id"])
        failed = await until_done(ws, ids[0])
        succeeded = await until_done(ws, ids[1])
    error = next(m for m in failed if m["type"] == "execution_error")["data"]
    assert (
        error["node_id"] == "1" and error["node_type"] == "Shout" and "shout refused fail" in error["exception_message"]
    )
    assert any(m["type"] == "execution_success" for m in succeeded)


async def until_done(ws: Any, prompt_id: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        while True:
            raw = await ws.recv()
            if isinstance(raw, bytes):
                continue
            msg = json.loads(raw)
            seen.append(msg)
            if msg["type"] == "executing" and msg["data"]["node"] is None and msg["data"]["prompt_id"] == prompt_id:
                return seen
