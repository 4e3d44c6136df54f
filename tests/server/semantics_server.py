"""A real server whose registry holds the test nodes, LoadImage/SaveImage, the rebatch nodes and the semantics
test pack (loaded as packs are, from a custom_nodes folder), plus helpers to run a prompt over HTTP + WebSocket."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import compat
import nodes.image
import nodes.rebatch
from engine.cache import OutputCache
from engine.executor import Executor
from engine.packs import load_packs
from tests.server.conftest import Running, build_state, connect, receive_until_done, start

PACK = Path(__file__).parent / "packs" / "semantics_pack"


@dataclass
class Run:
    """One finished job: its id, the WebSocket messages up to `executing {node: null}`, its history entry."""

    prompt_id: str
    messages: list[Any]
    entry: dict[str, Any]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m["data"] for m in self.messages if isinstance(m, dict) and m["type"] == kind]

    def executing(self) -> list[str]:
        return [d["node"] for d in self.of("executing") if d["node"] is not None]

    def ui(self, node: str) -> dict[str, Any]:
        return self.entry["outputs"][node]


async def run_prompt(server: Running, prompt: dict[str, Any], client: str = "sem", **body: Any) -> Run:
    async with connect(server, client) as ws:
        await ws.recv()  # the greeting
        status, answer = await server.post_prompt(prompt, client_id=client, **body)
        assert status == 200, answer
        messages = await receive_until_done(ws, answer["prompt_id"])
    history = await server.history(answer["prompt_id"])
    return Run(answer["prompt_id"], messages, history[answer["prompt_id"]])


@pytest.fixture
async def make_sem_server(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Servers with the semantics pack; `cache` replaces the executor's output cache."""
    cleanups: list[Any] = []

    async def make(cache: OutputCache | None = None) -> Running:
        import aiohttp

        tmp = tmp_path / f"sem{len(cleanups)}"
        state = build_state(tmp)
        state.registry.add_module(nodes.image)
        state.registry.add_module(nodes.rebatch)
        shutil.copytree(PACK, tmp / "custom_nodes" / PACK.name)
        compat.install(compat.Host(state.folders, state.registry, state.env))
        summaries = load_packs(state.registry, [tmp / "custom_nodes"], timeout=None)
        assert [s.status for s in summaries] == ["ok"], summaries
        if cache is not None:
            state.jobs.executor = Executor(state.registry, cache=cache, env=state.env)
        runner, url = await start(state)
        http = aiohttp.ClientSession()
        cleanups.append((runner, http))
        return Running(url, state, http, tmp)

    yield make
    for runner, http in cleanups:
        await http.close()
        await runner.cleanup()
    compat.uninstall()


@pytest.fixture
async def sem(make_sem_server: Callable[..., Any]) -> Running:
    return await make_sem_server()
