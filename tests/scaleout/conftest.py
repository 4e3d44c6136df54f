"""A local Ray cluster (2 CPUs) with a pool of two Loom workers, shared by the module's tests, and a real Loom
server per test (its own SQLite file) whose queue runs jobs on that pool."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from cli import build_parser
from cli.runtime import runtime_settings
from engine.jobs import JobQueue
from engine.store import Store
from runtime.build import Runtime, build_runtime
from server.app import create_app
from server.state import ServerConfig, ServerState
from server.wire import history_messages

PACKS = Path(__file__).resolve().parent / "packs"
CHECKPOINTS = ("a.safetensors", "b.safetensors", "c.safetensors")


@dataclass
class Farm:
    tmp: Path
    runtime: Runtime
    pool: Any


@dataclass
class Server:
    url: str
    state: ServerState
    http: aiohttp.ClientSession

    async def post_prompt(self, prompt: dict[str, Any], client_id: str) -> str:
        async with self.http.post(self.url + "/prompt", json={"prompt": prompt, "client_id": client_id}) as r:
            body = await r.json()
            assert r.status == 200, body
            return body["prompt_id"]

    async def history(self, prompt_id: str, timeout: float = 30) -> dict[str, Any]:
        """The job's history entry (written just after its last event, so wait for it)."""
        async with asyncio.timeout(timeout):
            while True:
                entry = (await self.get(f"/history/{prompt_id}")).get(prompt_id)
                if entry is not None:
                    return entry
                await asyncio.sleep(0.05)

    async def get(self, path: str) -> Any:
        async with self.http.get(self.url + path) as r:
            assert r.status == 200
            return await r.json()


def tiny_workflow(ckpt: str, text: str, prefix: str, **rendezvous: Any) -> dict[str, Any]:
    """Load a checkpoint, encode a text, pass a rendezvous (folder/me/wait_for; none by default), save a PNG."""
    return {
        "1": {"class_type": "TinyCheckpointLoader", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "TinyEncode", "inputs": {"model": ["1", 0], "text": text}},
        "3": {
            "class_type": "TinyRendezvous",
            "inputs": {"conditioning": ["2", 0], "steps": 2, "folder": "", "me": "", "wait_for": "", **rendezvous},
        },
        "4": {"class_type": "TinySave", "inputs": {"conditioning": ["3", 0], "filename_prefix": prefix}},
    }


def farm_args(tmp: Path, *extra: str) -> Any:
    """`main.py serve --workers ray` flags for a farm in `tmp`: tiny checkpoints and the test pack, configured
    through an extra model paths file as a studio would."""
    checkpoints = tmp / "models" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(CHECKPOINTS):
        (checkpoints / name).write_bytes(bytes([i]) * 1024)
    config = tmp / "extra_model_paths.yaml"
    config.write_text(yaml.safe_dump({"farm": {"checkpoints": str(checkpoints), "custom_nodes": str(PACKS)}}))
    argv = ["serve", "--base-directory", str(tmp / "server"), "--extra-model-paths-config", str(config)]
    return build_parser().parse_args([*argv, "--workers", "ray", "--workers-per-node", "2", "--cpu", *extra])


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    ray = pytest.importorskip("ray")
    from cli.serve import start_pool
    from scaleout.pool import code_runtime_env

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=code_runtime_env())
    tmp = tmp_path_factory.mktemp("farm")
    args = farm_args(tmp)
    runtime = build_runtime(runtime_settings(args))
    pool = start_pool(args, runtime)
    try:
        yield Farm(tmp, runtime, pool)
    finally:
        pool.close()
        ray.shutdown()


@pytest.fixture
async def server(farm: Farm, tmp_path: Path) -> AsyncIterator[Server]:
    """A real server on a loopback port; its queue runs two jobs at once on the farm's pool."""
    farm.pool.free(unload_models=True, free_memory=True)  # every test starts from cold workers
    runtime = farm.runtime
    jobs = JobQueue(Store(tmp_path / "loom.db"), farm.pool, history_messages, runtime.env, workers=farm.pool.size)
    config = replace(ServerConfig(), web_root=tmp_path / "no-web")
    state = ServerState(config, runtime.registry, runtime.folders, jobs, runtime.env)
    state.workers = farm.pool
    runner = web.AppRunner(create_app(state))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    async with aiohttp.ClientSession() as http:
        yield Server(f"http://127.0.0.1:{runner.addresses[0][1]}", state, http)
    await runner.cleanup()


async def collect(ws: aiohttp.ClientWebSocketResponse, prompt_ids: set[str], timeout: float = 120) -> list[Any]:
    """Text messages (as dicts) until every job in `prompt_ids` has sent its closing `executing {node: null}`."""
    seen: list[Any] = []
    waiting = set(prompt_ids)
    async with asyncio.timeout(timeout):
        while waiting:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            seen.append(data)
            if data["type"] == "executing" and data["data"]["node"] is None:
                waiting.discard(data["data"]["prompt_id"])
    return seen


async def receive_some(ws: aiohttp.ClientWebSocketResponse) -> list[Any]:
    """The next text message as a one-item list ([] for a binary frame)."""
    msg = await ws.receive()
    return [json.loads(msg.data)] if msg.type == aiohttp.WSMsgType.TEXT else []


def of(messages: list[Any], prompt_id: str, kind: str) -> list[dict[str, Any]]:
    return [m["data"] for m in messages if m["type"] == kind and m["data"].get("prompt_id") == prompt_id]
