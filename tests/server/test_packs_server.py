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

HOOKS_PACK = """
import os

from aiohttp import web
from PIL import Image
from server import BinaryEventTypes, PromptServer

server = PromptServer.instance


def rewrite(body):
    for node in body["prompt"].values():
        if node["inputs"].get("text") == "secret":
            node["inputs"]["text"] = "rewritten"
    return body


def broken_handler(body):
    raise RuntimeError("this handler always fails")


server.add_on_prompt_handler(broken_handler)
server.add_on_prompt_handler(rewrite)
server.app.router.add_static("/pack_hooks/static", os.path.join(os.path.dirname(__file__), "static"))


async def pong(request):
    return web.json_response({"pong": True})


server.app.add_routes([web.get("/pack_hooks/pong", pong)])


class Painter:
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"size": ("INT", {"default": 16})}}

    def run(self, size):
        image = Image.new("RGB", (size, size), (255, 0, 0))
        server.send_sync(BinaryEventTypes.UNENCODED_PREVIEW_IMAGE, ["JPEG", image, None], server.client_id)
        server.send_sync(BinaryEventTypes.PREVIEW_IMAGE, b"\\x00\\x00\\x00\\x02raw-png-bytes", server.client_id)
        return {"ui": {"painted": [size]}}


NODE_CLASS_MAPPINGS = {"Painter": Painter}
"""

V3_PACK = """
import torch
from comfy_api.latest import ComfyExtension, io
from comfy_api.v0_0_2 import ComfyAPISync

api = ComfyAPISync()


class Steps(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3Steps", inputs=[io.Int.Input("n", default=2)], outputs=[], is_output_node=True)

    @classmethod
    def execute(cls, n):
        for i in range(n):
            api.execution.set_progress(i + 1, n, preview_image=torch.full((1, 8, 8, 3), 0.25))
        return io.NodeOutput(ui={"steps": [n]})


class Extension(ComfyExtension):
    async def get_node_list(self):
        return [Steps]


def comfy_entrypoint():
    return Extension()
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
    (packs / "pack_hooks" / "static").mkdir(parents=True)
    (packs / "pack_hooks" / "__init__.py").write_text(textwrap.dedent(HOOKS_PACK))
    (packs / "pack_hooks" / "static" / "note.txt").write_text("static from pack_hooks")
    (packs / "pack_v3.py").write_text(textwrap.dedent(V3_PACK))
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


async def test_prompt_handlers_rewrite_the_prompt_and_a_failing_one_is_skipped(served: Served) -> None:
    ws_url = served.url.replace("http://", "ws://") + "/ws?clientId=c3"
    async with websockets.connect(ws_url) as ws:
        async with served.http.post(
            served.url + "/prompt",
            json={"prompt": {"1": {"class_type": "Shout", "inputs": {"text": "secret"}}}, "client_id": "c3"},
        ) as r:
            assert r.status == 200
            prompt_id = (await r.json())["prompt_id"]
        messages = await until_done(ws, prompt_id)
    executed = next(m for m in messages if m["type"] == "executed")
    assert executed["data"]["output"] == {"text": ["REWRITTEN"]}


async def test_what_packs_did_to_the_app_before_it_existed_is_replayed(served: Served) -> None:
    assert await served.get("/pack_hooks/pong") == (200, {"pong": True})
    assert await served.get("/pack_hooks/static/note.txt") == (200, "static from pack_hooks")


async def test_a_packs_binary_preview_reaches_its_client_as_a_preview_frame(served: Served) -> None:
    ws_url = served.url.replace("http://", "ws://") + "/ws?clientId=c4"
    async with websockets.connect(ws_url) as ws:
        await ws.send(json.dumps({"type": "feature_flags", "data": {}}))  # a front end: it wants previews
        async with served.http.post(
            served.url + "/prompt",
            json={"prompt": {"1": {"class_type": "Painter", "inputs": {"size": 24}}}, "client_id": "c4"},
        ) as r:
            prompt_id = (await r.json())["prompt_id"]
        frames: list[bytes] = []
        async with asyncio.timeout(20):
            while True:
                raw = await ws.recv()
                if isinstance(raw, bytes):
                    frames.append(raw)
                    continue
                msg = json.loads(raw)
                if msg["type"] == "executing" and msg["data"]["node"] is None and msg["data"]["prompt_id"] == prompt_id:
                    break
    [encoded, raw] = frames
    assert int.from_bytes(encoded[:4], "big") == 1 and int.from_bytes(encoded[4:8], "big") == 1
    assert encoded[8:10] == b"\xff\xd8"
    assert raw == b"\x00\x00\x00\x01\x00\x00\x00\x02raw-png-bytes"


async def test_v3_progress_api_reaches_the_client_as_progress_state_and_previews(served: Served) -> None:
    ws_url = served.url.replace("http://", "ws://") + "/ws?clientId=c5"
    async with websockets.connect(ws_url) as ws:
        await ws.send(json.dumps({"type": "feature_flags", "data": {}}))
        async with served.http.post(
            served.url + "/prompt",
            json={"prompt": {"1": {"class_type": "V3Steps", "inputs": {"n": 3}}}, "client_id": "c5"},
        ) as r:
            prompt_id = (await r.json())["prompt_id"]
        texts: list[dict[str, Any]] = []
        previews = 0
        async with asyncio.timeout(20):
            while True:
                raw = await ws.recv()
                if isinstance(raw, bytes):
                    previews += 1
                    continue
                msg = json.loads(raw)
                texts.append(msg)
                if msg["type"] == "executing" and msg["data"]["node"] is None and msg["data"]["prompt_id"] == prompt_id:
                    break
    progress = [m["data"] for m in texts if m["type"] == "progress"]
    assert [(p["value"], p["max"], p["node"]) for p in progress] == [(1, 3, "1"), (2, 3, "1"), (3, 3, "1")]
    states = [m["data"]["nodes"]["1"] for m in texts if m["type"] == "progress_state" and "1" in m["data"]["nodes"]]
    assert any(s["value"] == 3 and s["max"] == 3 for s in states)
    assert previews == 3
    executed = next(m for m in texts if m["type"] == "executed")
    assert executed["data"]["output"] == {"steps": [3]}


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
