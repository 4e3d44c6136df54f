"""Logs (ring, raw, subscribe, WebSocket `logs` messages), folder paths and system stats through a real server."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from server.logs import LogRing
from tests.server.conftest import Running, build_state, connect, start

log = logging.getLogger("loom.test.logs")


async def next_logs_message(ws, marker: str) -> dict:
    async with asyncio.timeout(10):
        while True:
            raw = await ws.recv()
            if isinstance(raw, str):
                msg = json.loads(raw)
                if msg["type"] == "logs" and any(marker in e["m"] for e in msg["data"]["entries"]):
                    return msg


@pytest.mark.parametrize("prefix", ["", "/api"])
async def test_logs_text_and_raw(server: Running, prefix: str) -> None:
    log.warning("a line for the logs panel")
    async with server.http.get(f"{server.url}{prefix}/internal/logs") as r:
        assert r.status == 200
        text = await r.json()
    assert "a line for the logs panel" in text
    async with server.http.get(f"{server.url}{prefix}/internal/logs/raw") as r:
        raw = await r.json()
    entry = next(e for e in raw["entries"] if "a line for the logs panel" in e["m"])
    assert entry["m"].endswith("\n") and entry["t"][:4].isdigit()
    assert set(raw["size"]) == {"cols", "rows"}


async def test_subscribed_client_gets_new_lines(server: Running) -> None:
    async with connect(server, "watcher") as ws, connect(server, "other") as other:
        await ws.recv()  # status
        await other.recv()
        body = {"enabled": True, "clientId": "watcher"}
        async with server.http.patch(server.url + "/internal/logs/subscribe", json=body) as r:
            assert r.status == 200
        log.warning("subscribed line 1")
        msg = await next_logs_message(ws, "subscribed line 1")
        assert set(msg["data"]) == {"entries", "size"}
        with pytest.raises(TimeoutError):  # not subscribed: nothing arrives
            async with asyncio.timeout(0.5):
                while True:
                    assert "logs" not in await other.recv()
        body = {"enabled": False, "clientId": "watcher"}
        async with server.http.patch(server.url + "/internal/logs/subscribe", json=body) as r:
            assert r.status == 200
        assert server.state.logs.subscribers() == []


async def test_subscribe_bad_bodies(server: Running) -> None:
    for body in ({"enabled": "yes", "clientId": "a"}, {"enabled": True}, {"enabled": True, "clientId": 3}):
        async with server.http.patch(server.url + "/internal/logs/subscribe", json=body) as r:
            assert r.status == 400, body
            assert (await r.json())["error"]["type"] == "invalid_request"
    async with server.http.patch(server.url + "/internal/logs/subscribe", data="nope") as r:
        assert r.status == 400


def test_ring_is_bounded() -> None:
    ring = LogRing(capacity=3)
    logger = logging.getLogger("loom.test.ring")
    logger.addHandler(ring)
    try:
        for i in range(5):
            logger.warning("line %d", i)
    finally:
        logger.removeHandler(ring)
    assert [e["m"].strip().rsplit(" ", 1)[1] for e in ring.entries()] == ["2", "3", "4"]
    for i in range(100):
        ring.subscribe(f"c{i}", True)
    assert len(ring.subscribers()) == 64 and ring.subscribers()[-1] == "c99"


async def test_ring_attached_while_the_app_runs(tmp_path) -> None:
    state = build_state(tmp_path)
    runner, _ = await start(state)
    assert state.logs in logging.getLogger().handlers
    await runner.cleanup()
    assert state.logs not in logging.getLogger().handlers


async def test_folder_paths(server: Running) -> None:
    async with server.http.get(server.url + "/internal/folder_paths") as r:
        paths = await r.json()
    assert paths["checkpoints"] == [str(server.tmp / "models" / "checkpoints")]
    assert paths["custom_nodes"] == [str(server.tmp / "custom_nodes")]


async def test_system_stats_names_the_reference_version(server: Running) -> None:
    async with server.http.get(server.url + "/api/system_stats") as r:
        system = (await r.json())["system"]
    assert system["comfyui_version"].count(".") == 2 and system["loom_version"]


async def test_token_mode(make_server) -> None:
    srv = await make_server(auth_token="s3cret")
    for method, path in (("GET", "/internal/logs"), ("GET", "/internal/logs/raw"),
                         ("PATCH", "/internal/logs/subscribe"), ("GET", "/internal/folder_paths")):  # fmt: skip
        async with srv.http.request(method, srv.url + path, json={"enabled": True, "clientId": "x"}) as r:
            assert r.status == 401, path
    headers = {"Authorization": "Bearer s3cret", "Origin": "http://evil.example"}
    async with srv.http.patch(srv.url + "/internal/logs/subscribe", json={}, headers=headers) as r:
        assert r.status == 403


async def test_a_finished_job_is_a_log_line(server: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="loom.jobs")  # `serve` logs at INFO
    prompt = {
        "1": {"class_type": "TestNumber", "inputs": {"value": 3}},
        "2": {"class_type": "TestShow", "inputs": {"value": ["1", 0]}},
    }
    _, body = await server.post_prompt(prompt)
    async with asyncio.timeout(20):
        while not any(f"job {body['prompt_id']}: success in" in e["m"] for e in server.state.logs.entries()):
            await asyncio.sleep(0.05)
