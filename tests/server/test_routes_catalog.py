"""Model names resolved when a job is accepted over HTTP, reported as warnings, and the model index routes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets

from catalog.hashes import HashCache
from catalog.index import ModelIndex
from catalog.names import prompt_resolver
from engine.environment import NodeEnvironment
from engine.executor import Executor
from engine.folders import Folders
from engine.jobs import JobQueue
from engine.native import Combo, node
from engine.registry import NodeRegistry
from engine.store import Store
from nodes.shared import model_files
from server.state import ServerConfig, ServerState
from server.wire import history_messages
from tests.server.conftest import receive_until_done, start

FILES = {
    "sdxl/sd_xl_base_1.0.safetensors": b"xl",
    "a/twin.safetensors": b"twin a",
    "b/twin.safetensors": b"twin b",
    "loom-demo-tiny-sd15.safetensors": b"demo",
}


@node(output_node=True)
def PickModel(ckpt_name: str = Combo(model_files("checkpoints"))) -> dict:
    return {"ui": {"picked": [ckpt_name]}}


class Srv:
    def __init__(self, url: str, http: aiohttp.ClientSession, index: ModelIndex) -> None:
        self.url, self.http, self.index = url, http, index

    async def prompt(self, ckpt: str, **body: Any) -> tuple[int, dict[str, Any]]:
        prompt = {"1": {"class_type": "PickModel", "inputs": {"ckpt_name": ckpt}}}
        async with self.http.post(self.url + "/prompt", json={"prompt": prompt, **body}) as r:
            return r.status, await r.json()


async def serve(tmp_path: Path, strict: bool = False) -> AsyncIterator[Srv]:
    folders = Folders.under(tmp_path)
    folders.ensure()
    for name, data in FILES.items():
        path = folders.model_dirs("checkpoints")[0] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    env = NodeEnvironment(folders)
    registry = NodeRegistry(env)
    registry.add_all([PickModel])
    index = ModelIndex(folders, HashCache(tmp_path / "user" / "model_index.db"))
    index.scan()
    names = None if strict else prompt_resolver(registry, index)
    jobs = JobQueue(
        Store(tmp_path / "user" / "loom.db"), Executor(registry, env=env), history_messages, env, names=names
    )
    state = ServerState(ServerConfig(web_root=tmp_path / "no-web"), registry, folders, jobs, env, models=index)
    runner, url = await start(state)
    async with aiohttp.ClientSession() as http:
        yield Srv(url, http, index)
    await runner.cleanup()


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[Srv]:
    async for s in serve(tmp_path):
        yield s


async def test_windows_name_runs_the_file_it_means_and_says_so(srv: Srv) -> None:
    async with websockets.connect(srv.url.replace("http", "ws") + "/ws?clientId=c1") as ws:
        status, body = await srv.prompt("SDXL\\sd_xl_base_1.0.safetensors", client_id="c1")
        assert status == 200, body
        seen = await receive_until_done(ws, body["prompt_id"])
    types = [m["type"] for m in seen if isinstance(m, dict)]
    assert types.index("execution_start") < types.index("node_warning")
    warning = next(m["data"] for m in seen if isinstance(m, dict) and m["type"] == "node_warning")
    assert warning["node"] == "1"
    assert warning["message"] == (
        "model name resolved: SDXL\\sd_xl_base_1.0.safetensors -> sdxl/sd_xl_base_1.0.safetensors (found by separators)"
    )
    executed = next(m["data"] for m in seen if isinstance(m, dict) and m["type"] == "executed")
    assert executed["output"] == {"picked": ["sdxl/sd_xl_base_1.0.safetensors"]}
    async with srv.http.get(f"{srv.url}/history/{body['prompt_id']}") as r:
        entry = (await r.json())[body["prompt_id"]]
    recorded = [data for kind, data in entry["status"]["messages"] if kind == "node_warning"]
    assert [r["message"] for r in recorded] == [warning["message"]]
    assert entry["prompt"][2]["1"]["inputs"]["ckpt_name"] == "sdxl/sd_xl_base_1.0.safetensors"


async def test_ambiguous_name_is_a_400_listing_the_candidates(srv: Srv) -> None:
    status, body = await srv.prompt("twin.safetensors")
    assert status == 400
    [error] = body["node_errors"]["1"]["errors"]
    assert error["type"] == "value_not_in_list"
    assert "'a/twin.safetensors'" in error["message"] and "'b/twin.safetensors'" in error["message"]
    assert error["extra_info"]["input_name"] == "ckpt_name"


async def test_hash_in_the_canvas_finds_a_renamed_file(srv: Srv) -> None:
    digest = hashlib.sha256(b"twin b").hexdigest()
    canvas = {
        "nodes": [
            {
                "id": 1,
                "type": "PickModel",
                "properties": {
                    "models": [
                        {
                            "name": "renamed.safetensors",
                            "hash": digest,
                            "hash_type": "SHA256",
                            "directory": "checkpoints",
                        }
                    ]
                },
            }
        ]
    }
    extra = {"extra_data": {"extra_pnginfo": {"workflow": canvas}}}
    srv.index.hash_pending()  # the server's own background hasher may be at it too: either way, all are hashed
    status, body = await srv.prompt("renamed.safetensors", **extra)
    assert status == 200, body
    status, body = await srv.prompt("renamed.safetensors")
    assert status == 400, "without the recorded hash the name matches nothing"


async def test_model_index_route(srv: Srv) -> None:
    async with srv.http.get(srv.url + "/models/index?folder=checkpoints") as r:
        assert r.status == 200
        listing = await r.json()
    assert [f["name"] for f in listing["files"]] == sorted(FILES)
    srv.index.hash_pending()
    async with srv.http.get(srv.url + "/api/models/index") as r:
        listing = await r.json()
    assert listing["pending"] == 0
    entry = next(f for f in listing["files"] if f["name"] == "a/twin.safetensors")
    assert entry["sha256"] == hashlib.sha256(b"twin a").hexdigest() and entry["autov2"] == entry["sha256"][:10]
    assert entry["folder"] == "checkpoints" and entry["size"] == 6
    async with srv.http.get(srv.url + "/models/index?folder=nope") as r:
        assert r.status == 404 and (await r.json())["error"]["type"] == "not_found"


async def test_resolve_route_offers_hash_then_names_then_demo(srv: Srv) -> None:
    srv.index.hash_pending()
    choices = sorted(FILES)
    wanted = {
        "models": [
            {
                "name": "old/twin.safetensors",
                "choices": choices,
                "folder": "checkpoints",
                "hash": hashlib.sha256(b"twin b").hexdigest()[:10],
            },
            {"name": "unknown.safetensors", "choices": choices},
        ]
    }
    async with srv.http.post(srv.url + "/models/resolve", json=wanted) as r:
        assert r.status == 200
        answer = await r.json()
    first, second = answer["models"]
    assert [(p["name"], p["rule"]) for p in first["proposals"]] == [
        ("b/twin.safetensors", "hash"),
        ("a/twin.safetensors", "subfolder"),
        ("loom-demo-tiny-sd15.safetensors", "demo"),
    ]
    assert second["proposals"] == [{"name": "loom-demo-tiny-sd15.safetensors", "rule": "demo"}]
    async with srv.http.post(srv.url + "/models/resolve", data=json.dumps({"models": [{"name": 3}]})) as r:
        assert r.status == 400 and "name" in (await r.json())["error"]["message"]


async def test_strict_model_names_resolve_nothing(tmp_path: Path) -> None:
    async for strict in serve(tmp_path, strict=True):
        status, body = await strict.prompt("SDXL\\sd_xl_base_1.0.safetensors")
        assert status == 400 and body["node_errors"]["1"]["errors"][0]["type"] == "value_not_in_list"
