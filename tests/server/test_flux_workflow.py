"""workflows/flux.api.json through the real HTTP + WebSocket API on the FLUX demo files a fresh machine gets:
queued, run, its image saved and listed in the history."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
import websockets

import nodes
from engine.executor import Executor
from engine.jobs import JobQueue
from engine.registry import NodeRegistry
from engine.store import Store
from nodes.shared import node_environment
from runtime.build import build_folders, write_demo_models
from runtime.settings import RuntimeSettings
from server.state import ServerConfig, ServerState
from server.wire import history_messages
from tests.server.conftest import receive_until_done, start

WORKFLOW = Path(__file__).resolve().parents[2] / "workflows" / "flux.api.json"


@pytest.mark.slow
async def test_flux_example_runs_through_the_api(tmp_path: Path) -> None:
    folders = build_folders(RuntimeSettings(base_directory=tmp_path))
    write_demo_models(folders)
    assert "loom-demo-tiny-flux-dev.safetensors" in folders.list_models("diffusion_models")
    env = node_environment(folders, force_cpu=True)
    registry = NodeRegistry(env)
    nodes.register_builtin(registry)
    queue = JobQueue(Store(tmp_path / "user" / "loom.db"), Executor(registry, env=env), history_messages, env)
    state = ServerState(replace(ServerConfig(), web_root=tmp_path / "no-web"), registry, folders, queue, env)
    runner, url = await start(state)
    prompt = json.loads(WORKFLOW.read_text())
    prompt["7"]["inputs"].update(width=64, height=64)
    prompt["8"]["inputs"]["steps"] = 2
    try:
        async with aiohttp.ClientSession() as http:
            async with websockets.connect(url.replace("http", "ws") + "/ws?clientId=flux") as ws:
                async with http.post(url + "/prompt", json={"prompt": prompt, "client_id": "flux"}) as r:
                    assert r.status == 200, await r.text()
                    prompt_id = (await r.json())["prompt_id"]
                messages = await receive_until_done(ws, prompt_id, timeout=300)
            async with http.get(f"{url}/history/{prompt_id}") as r:
                entry = (await r.json())[prompt_id]
    finally:
        await runner.cleanup()
    kinds = [m["type"] for m in messages if isinstance(m, dict)]
    assert "execution_error" not in kinds, messages
    assert entry["status"]["status_str"] == "success"
    images = entry["outputs"]["10"]["images"]
    assert len(images) == 1 and (folders.output / images[0]["filename"]).is_file()
