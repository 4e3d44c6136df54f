"""Queue operations over HTTP (front, number, delete, clear), interrupt, per-client events, reconnects."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from server.hub import Session
from server.messages import preview_frame, text
from tests.server.conftest import Running, connect, receive_until_done


def gated(gate: Path, value: int = 1) -> dict[str, Any]:
    """A job that runs until `gate` exists."""
    return {
        "1": {"class_type": "TestNumber", "inputs": {"value": value}},
        "2": {"class_type": "TestWaitFile", "inputs": {"value": ["1", 0], "path": str(gate)}},
        "3": {"class_type": "TestSaveImage", "inputs": {"value": ["2", 0], "prefix": f"g{value}"}},
    }


def quick(value: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "TestNumber", "inputs": {"value": value}},
        "2": {"class_type": "TestSaveImage", "inputs": {"value": ["1", 0], "prefix": "q"}},
    }


def endless(value: int = 1) -> dict[str, Any]:
    return {
        "1": {"class_type": "TestNumber", "inputs": {"value": value}},
        "2": {"class_type": "TestSteps", "inputs": {"value": ["1", 0], "steps": 1000000, "delay_ms": 5}},
        "3": {"class_type": "TestSaveImage", "inputs": {"value": ["2", 0]}},
    }


async def queue(srv: Running) -> dict[str, Any]:
    async with srv.http.get(srv.url + "/queue") as r:
        return await r.json()


async def wait_running(srv: Running, prompt_id: str) -> None:
    async with asyncio.timeout(20):
        while [i[1] for i in (await queue(srv))["queue_running"]] != [prompt_id]:
            await asyncio.sleep(0.02)


async def wait_history(srv: Running, prompt_id: str) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while not (entry := await srv.history(prompt_id)):
            await asyncio.sleep(0.02)
    return entry[prompt_id]


async def test_front_number_delete_clear(server: Running) -> None:
    gate = server.tmp / "gate"
    _, a = await server.post_prompt(gated(gate))
    await wait_running(server, a["prompt_id"])
    _, b = await server.post_prompt(quick(2))
    _, c = await server.post_prompt(quick(3))
    _, d = await server.post_prompt(quick(4), front=True)
    _, e = await server.post_prompt(quick(5), number=0.5)
    assert d["number"] < 0 < e["number"] < b["number"] < c["number"]
    q = await queue(server)
    assert [i[1] for i in q["queue_running"]] == [a["prompt_id"]]
    assert [i[1] for i in q["queue_pending"]] == [d["prompt_id"], e["prompt_id"], b["prompt_id"], c["prompt_id"]]
    item = q["queue_pending"][0]
    assert item[0] == d["number"] and item[2] == quick(4) and item[4] == ["2"] and isinstance(item[3], dict)
    async with server.http.get(server.url + "/prompt") as r:
        assert await r.json() == {"exec_info": {"queue_remaining": 5}}

    async with server.http.post(server.url + "/queue", json={"delete": [c["prompt_id"]]}) as r:
        assert r.status == 200
    assert [i[1] for i in (await queue(server))["queue_pending"]] == [d["prompt_id"], e["prompt_id"], b["prompt_id"]]
    async with server.http.post(server.url + "/api/queue", json={"clear": True}) as r:
        assert r.status == 200
    q = await queue(server)
    assert q["queue_pending"] == [] and len(q["queue_running"]) == 1

    gate.touch()
    entry = await wait_history(server, a["prompt_id"])
    assert entry["status"]["completed"] is True
    assert await server.history(b["prompt_id"]) == {}


async def test_history_delete_and_clear(server: Running) -> None:
    ids = []
    for value in (1, 2, 3):
        _, body = await server.post_prompt(quick(value))
        ids.append(body["prompt_id"])
    for prompt_id in ids:
        await wait_history(server, prompt_id)
    async with server.http.post(server.url + "/history", json={"delete": [ids[0]]}) as r:
        assert r.status == 200
    assert await server.history(ids[0]) == {} and ids[1] in await server.history(ids[1])
    async with server.http.post(server.url + "/api/history", json={"clear": True}) as r:
        assert r.status == 200
    async with server.http.get(server.url + "/history") as r:
        assert await r.json() == {}


async def test_interrupt_only_the_named_job(server: Running) -> None:
    async with connect(server, "int") as ws:
        _, job = await server.post_prompt(endless(), client_id="int")
        pid = job["prompt_id"]
        async with asyncio.timeout(20):
            while True:
                msg = await ws.recv()
                if isinstance(msg, str) and json.loads(msg)["type"] == "progress":
                    break
        async with server.http.post(server.url + "/interrupt", json={"prompt_id": "someone-else"}) as r:
            assert r.status == 200
        await asyncio.sleep(0.1)
        assert [i[1] for i in (await queue(server))["queue_running"]] == [pid]
        async with server.http.post(server.url + "/interrupt", json={"prompt_id": pid}) as r:
            assert r.status == 200
        messages = await receive_until_done(ws, pid)
    interrupted = next(m["data"] for m in messages if isinstance(m, dict) and m["type"] == "execution_interrupted")
    assert interrupted["prompt_id"] == pid and interrupted["node_id"] == "2" and interrupted["node_type"] == "TestSteps"
    assert "1" in interrupted["executed"]
    entry = await wait_history(server, pid)
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"


async def test_interrupt_without_body_and_failure_event(server: Running) -> None:
    _, job = await server.post_prompt(endless())
    await wait_running(server, job["prompt_id"])
    async with server.http.post(server.url + "/api/interrupt") as r:
        assert r.status == 200
    assert (await wait_history(server, job["prompt_id"]))["status"]["completed"] is False

    async with connect(server, "f") as ws:
        failing = {
            "1": {"class_type": "TestNumber", "inputs": {"value": 7}},
            "2": {"class_type": "TestFail", "inputs": {"value": ["1", 0]}},
            "3": {"class_type": "TestSaveImage", "inputs": {"value": ["2", 0]}},
        }
        _, job = await server.post_prompt(failing, client_id="f")
        messages = await receive_until_done(ws, job["prompt_id"])
    error = next(m["data"] for m in messages if isinstance(m, dict) and m["type"] == "execution_error")
    assert error["node_id"] == "2" and error["node_type"] == "TestFail" and error["exception_type"] == "RuntimeError"
    assert "failing on purpose with 7" in error["exception_message"] and isinstance(error["traceback"], list)
    assert set(error) >= {"executed", "current_inputs", "current_outputs"}
    entry = await wait_history(server, job["prompt_id"])
    assert entry["status"]["status_str"] == "error"


async def test_two_clients_see_only_their_own_jobs(server: Running) -> None:
    async with connect(server, "alice") as alice, connect(server, "bob") as bob:
        await alice.recv()
        await bob.recv()
        _, a = await server.post_prompt(quick(11), client_id="alice")
        _, b = await server.post_prompt(quick(12), client_id="bob")
        seen_a = await receive_until_done(alice, a["prompt_id"])
        seen_b = await receive_until_done(bob, b["prompt_id"])
        # bob's job ran after alice's: alice's socket then carries no more of bob's job than status messages
        await asyncio.sleep(0.2)
        try:
            async with asyncio.timeout(0.3):
                while True:
                    raw = await alice.recv()
                    seen_a.append(json.loads(raw) if isinstance(raw, str) else raw)
        except TimeoutError:
            pass
    for seen, mine in ((seen_a, a["prompt_id"]), (seen_b, b["prompt_id"])):
        ids = {m["data"].get("prompt_id") for m in seen if isinstance(m, dict)}
        assert ids - {None} == {mine}
        types = {m["type"] for m in seen if isinstance(m, dict)}
        assert "status" in types


async def test_status_to_everyone_when_the_queue_changes(server: Running) -> None:
    async with connect(server, "watcher") as ws:
        await ws.recv()
        await server.post_prompt(quick(21), client_id="someone")
        async with asyncio.timeout(10):
            while True:
                msg = json.loads(await ws.recv())
                assert msg["type"] == "status"  # never the other client's job events
                if msg["data"]["status"]["exec_info"]["queue_remaining"] == 1:
                    break


async def test_reconnect_gets_status_and_executing_node(server: Running) -> None:
    gate = server.tmp / "gate2"
    async with connect(server, "carol") as ws:
        await ws.recv()
        _, job = await server.post_prompt(gated(gate), client_id="carol")
        await wait_running(server, job["prompt_id"])
    async with connect(server, "carol") as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "status" and hello["data"]["sid"] == "carol"
        assert hello["data"]["status"]["exec_info"]["queue_remaining"] == 1
        again = json.loads(await ws.recv())
        assert again["type"] == "executing"
        assert again["data"] == {"node": "2", "display_node": "2", "prompt_id": job["prompt_id"]}
        gate.touch()
        await receive_until_done(ws, job["prompt_id"])


async def test_slow_client_never_stalls_the_worker(server: Running) -> None:
    """A client that never reads: thousands of previews, and the job still finishes."""
    many = {
        "1": {"class_type": "TestNumber", "inputs": {"value": 1}},
        "2": {"class_type": "TestSteps", "inputs": {"value": ["1", 0], "steps": 3000, "previews": 3000}},
        "3": {"class_type": "TestSaveImage", "inputs": {"value": ["2", 0]}},
    }
    async with connect(server, "sloth", max_size=None) as ws:
        await ws.send(json.dumps({"type": "feature_flags", "data": {}}))  # it wants the previews it never reads
        await ws.recv()  # status
        assert json.loads(await ws.recv())["type"] == "feature_flags"
        ws.transport.pause_reading()  # stop reading from the socket: the server's sends back up
        _, job = await server.post_prompt(many, client_id="sloth")
        entry = await wait_history(server, job["prompt_id"])
        assert entry["status"]["completed"] is True
        session = server.state.hub.sessions["sloth"]
        assert len(session.buffer) <= session.limit + 10 and session.dropped > 0
        ws.transport.resume_reading()
        messages = await receive_until_done(ws, job["prompt_id"])
    assert any(isinstance(m, dict) and m["type"] == "execution_success" for m in messages)


def test_buffer_drops_previews_first_never_final_messages() -> None:
    session = Session("s", web.WebSocketResponse(), limit=4)
    session.previews = True
    for _ in range(4):
        session.push(preview_frame("JPEG", b"x"))
    for i in range(6):
        session.push(text("executed", {"node": str(i)}))
    session.push(preview_frame("JPEG", b"late"))
    finals = [f for f in session.buffer if not f.droppable]
    assert len(finals) == 6 and all(f.droppable is False for f in finals)
    assert not any(f.data == b"late" for f in session.buffer if f.data)
    assert session.dropped == 5


async def test_events_of_a_job_queued_right_after_connecting_arrive(server: Running) -> None:
    """The session exists from the handshake on: a job queued at once still reaches this client, after the greeting."""
    for i in range(10):
        async with connect(server, f"eager{i}") as ws:
            _, job = await server.post_prompt(quick(100 + i), client_id=f"eager{i}")
            messages = await receive_until_done(ws, job["prompt_id"])
        assert messages[0]["type"] == "status" and messages[0]["data"]["sid"] == f"eager{i}"
        assert any(m["type"] == "execution_success" for m in messages if isinstance(m, dict))
