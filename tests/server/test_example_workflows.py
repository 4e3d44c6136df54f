"""Example workflows (workflows/*.api.json) through the real HTTP + WebSocket API on the demo files a fresh machine
gets: queued, run, their image saved and listed in the history."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets

import nodes
from engine.executor import Executor
from engine.folders import Folders
from engine.jobs import JobQueue
from engine.registry import NodeRegistry
from engine.store import Store
from nodes.shared import node_environment
from runtime.build import build_folders, write_demo_models
from runtime.settings import RuntimeSettings
from server.state import ServerConfig, ServerState
from server.wire import history_messages
from tests.server.conftest import receive_until_done, start

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def fresh_machine(tmp_path: Path) -> Folders:
    """A base directory as first start leaves it (demo models written), with the examples' input image."""
    folders = build_folders(RuntimeSettings(base_directory=tmp_path))
    write_demo_models(folders)
    folders.input.mkdir(parents=True, exist_ok=True)
    shutil.copy(WORKFLOWS / "example.png", folders.input / "example.png")
    return folders


async def run_through_api(tmp_path: Path, folders: Folders, prompt: dict[str, Any]) -> dict[str, Any]:
    """Queue `prompt` over HTTP, follow it on the WebSocket to the end; its history entry."""
    env = node_environment(folders, force_cpu=True)
    registry = NodeRegistry(env)
    nodes.register_builtin(registry)
    queue = JobQueue(Store(tmp_path / "user" / "loom.db"), Executor(registry, env=env), history_messages, env)
    state = ServerState(replace(ServerConfig(), web_root=tmp_path / "no-web"), registry, folders, queue, env)
    runner, url = await start(state)
    try:
        async with aiohttp.ClientSession() as http:
            async with websockets.connect(url.replace("http", "ws") + "/ws?clientId=example") as ws:
                async with http.post(url + "/prompt", json={"prompt": prompt, "client_id": "example"}) as r:
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
    return entry


def assert_one_saved_image(entry: dict[str, Any], folders: Folders, node_id: str) -> None:
    images = entry["outputs"][node_id]["images"]
    assert len(images) == 1 and (folders.output / images[0]["filename"]).is_file()


@pytest.mark.slow
async def test_flux_example_runs_through_the_api(tmp_path: Path) -> None:
    folders = fresh_machine(tmp_path)
    assert "loom-demo-tiny-flux-dev.safetensors" in folders.list_models("diffusion_models")
    prompt = json.loads((WORKFLOWS / "flux.api.json").read_text())
    prompt["7"]["inputs"].update(width=64, height=64)
    prompt["8"]["inputs"]["steps"] = 2
    assert_one_saved_image(await run_through_api(tmp_path, folders, prompt), folders, "10")


@pytest.mark.slow
async def test_ip_adapter_example_runs_through_the_api(tmp_path: Path) -> None:
    folders = fresh_machine(tmp_path)
    prompt = json.loads((WORKFLOWS / "ip_adapter.api.json").read_text())
    names = {v for node in prompt.values() for v in node["inputs"].values() if isinstance(v, str)}
    assert {"loom-demo-tiny-clip-vision.safetensors", "loom-demo-tiny-ip-adapter.safetensors"} <= names
    prompt["8"]["inputs"].update(width=64, height=64)
    prompt["9"]["inputs"]["steps"] = 2
    entry = await run_through_api(tmp_path, folders, prompt)
    assert_one_saved_image(entry, folders, "11")


@pytest.mark.slow
async def test_sd3_example_runs_through_the_api(tmp_path: Path) -> None:
    folders = fresh_machine(tmp_path)
    assert "loom-demo-tiny-sd3-medium.safetensors" in folders.list_models("diffusion_models")
    assert "loom-demo-tiny-clip-g.safetensors" in folders.list_models("text_encoders")
    prompt = json.loads((WORKFLOWS / "sd3.api.json").read_text())
    prompt["7"]["inputs"].update(width=64, height=48)
    prompt["8"]["inputs"]["steps"] = 2
    assert_one_saved_image(await run_through_api(tmp_path, folders, prompt), folders, "10")


@pytest.mark.slow
async def test_flux_redux_example_runs_through_the_api(tmp_path: Path) -> None:
    folders = fresh_machine(tmp_path)
    assert "loom-demo-tiny-siglip-vision.safetensors" in folders.list_models("clip_vision")
    assert folders.list_models("style_models") == ["loom-demo-tiny-flux-redux.safetensors"]
    prompt = json.loads((WORKFLOWS / "flux_redux.api.json").read_text())
    prompt["7"]["inputs"].update(width=64, height=64)
    prompt["8"]["inputs"]["steps"] = 2
    prompt["15"]["inputs"].update(strength=0.5, strength_type="attn_bias")
    assert_one_saved_image(await run_through_api(tmp_path, folders, prompt), folders, "10")
