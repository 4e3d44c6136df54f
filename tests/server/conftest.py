"""A real Loom server on a free loopback port, running the real executor with the test nodes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from aiohttp import web

import tests.testnodes as testnodes
from engine.environment import NodeEnvironment
from engine.executor import Executor
from engine.folders import Folders
from engine.jobs import JobQueue
from engine.registry import NodeRegistry
from engine.store import Store
from server.app import create_app
from server.state import ServerConfig, ServerState
from server.wire import history_messages


@dataclass
class Running:
    url: str
    state: ServerState
    http: aiohttp.ClientSession
    tmp: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    async def post_prompt(self, prompt: dict[str, Any], **body: Any) -> tuple[int, dict[str, Any]]:
        async with self.http.post(self.url + "/prompt", json={"prompt": prompt, **body}) as r:
            return r.status, await r.json()

    async def history(self, prompt_id: str) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/history/{prompt_id}") as r:
            return await r.json()


def build_state(tmp: Path, **config: Any) -> ServerState:
    folders = Folders.under(tmp)
    folders.ensure()
    env = NodeEnvironment(folders)
    registry = NodeRegistry(env)
    registry.add_module(testnodes)
    store = Store(tmp / "user" / "loom.db")
    executor = Executor(registry, env=env)
    cfg = replace(ServerConfig(), **{"web_root": tmp / "no-web", **config})
    return ServerState(cfg, registry, folders, JobQueue(store, executor, history_messages, env), env)


async def start(state: ServerState) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(create_app(state))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def make_server(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """A factory for servers with a given ServerConfig (token, host...); each in its own folder."""
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def make(**config: Any) -> Running:
        tmp = tmp_path / f"server{len(runners)}"
        state = build_state(tmp, **config)
        runner, url = await start(state)
        runners.append(runner)
        sessions.append(aiohttp.ClientSession())
        return Running(url, state, sessions[-1], tmp)

    yield make
    for http in sessions:
        await http.close()
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def server(make_server: Callable[..., Any]) -> Running:
    return await make_server()


async def receive_until_done(ws: Any, prompt_id: str, timeout: float = 20) -> list[Any]:
    """Messages (dicts for text, bytes for previews) up to this job's closing `executing {node: null}`."""
    seen: list[Any] = []
    async with asyncio.timeout(timeout):
        while True:
            raw = await ws.recv()
            msg = raw if isinstance(raw, bytes) else json.loads(raw)
            seen.append(msg)
            if isinstance(msg, dict) and msg["type"] == "executing":
                data = msg["data"]
                if data["node"] is None and data["prompt_id"] == prompt_id:
                    return seen


def connect(srv: Running, client_id: str | None = None, **kw: Any) -> Any:
    url = srv.ws_url + (f"?clientId={client_id}" if client_id else "")
    return websockets.connect(url, **kw)
