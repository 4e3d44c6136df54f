"""The round trip over a real socket: queue, events in the documented order, /view, /history, cache, errors."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

from PIL import Image

from tests.server.conftest import Running, connect, receive_until_done


def image_workflow(value: int = 5, steps: int = 3) -> dict[str, Any]:
    return {
        "1": {"class_type": "TestNumber", "inputs": {"value": value}},
        "2": {"class_type": "TestSteps", "inputs": {"value": ["1", 0], "steps": steps}},
        "3": {"class_type": "TestSaveImage", "inputs": {"value": ["2", 0], "prefix": "rt"}},
    }


def kinds(messages: list[Any]) -> list[str]:
    """Message types in order, with the node for `executing`; previews as "preview"; progress_state left out."""
    out = []
    for m in messages:
        if isinstance(m, bytes):
            out.append("preview")
        elif m["type"] == "executing":
            out.append(f"executing:{m['data']['node']}")
        elif m["type"] != "progress_state":
            out.append(m["type"])
    return out


async def test_round_trip_events_view_history_and_cache(server: Running) -> None:
    async with connect(server, "alice") as ws:
        hello = json.loads(await ws.recv())
        assert hello == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "alice"}}
        await ws.send(json.dumps({"type": "feature_flags", "data": {}}))  # a front end: it wants previews
        assert json.loads(await ws.recv())["type"] == "feature_flags"

        status, body = await server.post_prompt(image_workflow(), client_id="alice")
        assert status == 200
        assert set(body) == {"prompt_id", "number", "node_errors"} and body["node_errors"] == {}
        pid = body["prompt_id"]
        messages = await receive_until_done(ws, pid)

        seq = [k for k in kinds(messages) if k != "status"]
        assert seq == [
            "execution_start",
            "execution_cached",
            "executing:1",
            "executing:2",
            "progress",
            "preview",
            "progress",
            "progress",
            "executing:3",
            "executed",
            "execution_success",
            "executing:None",
        ]
        texts = [m for m in messages if isinstance(m, dict)]
        assert all(m["data"].get("prompt_id") == pid for m in texts if m["type"] != "status")
        progress = [m["data"] for m in texts if m["type"] == "progress"]
        assert progress[-1] == {"value": 3, "max": 3, "node": "2", "prompt_id": pid}
        preview = next(m for m in messages if isinstance(m, bytes))
        assert struct.unpack(">II", preview[:8]) == (1, 1) and preview[8:10] == b"\xff\xd8"
        states = [m["data"]["nodes"] for m in texts if m["type"] == "progress_state"]
        assert states and states[-1] == {"3": states[-1]["3"]} and states[-1]["3"]["state"] == "finished"
        assert states[0]["1"]["state"] == "running" and all("1" not in s for s in states[2:])
        executed = next(m["data"] for m in texts if m["type"] == "executed")
        image = {"filename": "rt_00005.png", "subfolder": "", "type": "output"}
        assert executed == {"node": "3", "display_node": "3", "output": {"images": [image]}, "prompt_id": pid}

        async with server.http.get(server.url + "/view", params=image) as r:
            assert r.status == 200 and r.content_type == "image/png"
            png = Image.open(io.BytesIO(await r.read()))
            assert png.size == (8, 8) and png.getpixel((0, 0)) == (5, 0, 0, 128)

        entry = (await server.history(pid))[pid]
        assert entry["prompt"][1] == pid and entry["prompt"][2] == image_workflow() and entry["prompt"][4] == ["3"]
        assert entry["outputs"] == {"3": {"images": [image]}}
        assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
        assert [m[0] for m in entry["status"]["messages"]] == [
            "execution_start",
            "execution_cached",
            "execution_success",
        ]
        assert entry["meta"]["3"]["node_id"] == "3" and entry["retry"] is False

        # the same workflow again: everything from cache, and the output node still shows its images
        status, body = await server.post_prompt(image_workflow(), client_id="alice")
        again = await receive_until_done(ws, body["prompt_id"])
        assert [k for k in kinds(again) if k != "status"] == [
            "execution_start",
            "execution_cached",
            "executed",
            "execution_success",
            "executing:None",
        ]
        cached = next(m["data"] for m in again if isinstance(m, dict) and m["type"] == "execution_cached")
        assert "3" in cached["nodes"]  # the output node came from cache, so nothing upstream of it was needed
        assert next(m["data"]["output"] for m in again if m["type"] == "executed") == {"images": [image]}
        entry = (await server.history(body["prompt_id"]))[body["prompt_id"]]
        assert entry["outputs"] == {"3": {"images": [image]}}


async def test_routes_answer_under_api_prefix(server: Running) -> None:
    for path in ("/object_info", "/prompt", "/queue", "/history", "/system_stats", "/models", "/embeddings",
                 "/extensions", "/features"):  # fmt: skip
        for prefix in ("", "/api"):
            async with server.http.get(server.url + prefix + path) as r:
                assert r.status == 200, prefix + path
                await r.json()


async def test_object_info(server: Running) -> None:
    async with server.http.get(server.url + "/object_info") as r:
        info = await r.json()
    assert info["TestSteps"]["input"]["required"]["steps"][0] == "INT"
    assert info["TestSaveImage"]["output_node"] is True
    async with server.http.get(server.url + "/api/object_info/TestAdd") as r:
        assert list(await r.json()) == ["TestAdd"]
    async with server.http.get(server.url + "/object_info/Nope") as r:
        assert r.status == 200 and await r.json() == {}


async def test_system_stats_models_and_features(server: Running) -> None:
    async with server.http.get(server.url + "/system_stats") as r:
        stats = await r.json()
    assert stats["system"]["ram_total"] > 0 and "python_version" in stats["system"]
    assert stats["devices"][0]["type"] == "cpu"
    (server.state.folders.model_dirs("checkpoints")[0] / "tiny.safetensors").write_bytes(b"x")
    (server.state.folders.model_dirs("embeddings")[0] / "happy.pt").write_bytes(b"x")
    async with server.http.get(server.url + "/models") as r:
        assert "checkpoints" in await r.json()
    async with server.http.get(server.url + "/models/checkpoints") as r:
        assert await r.json() == ["tiny.safetensors"]
    async with server.http.get(server.url + "/models/nowhere") as r:
        assert r.status == 404
    async with server.http.get(server.url + "/embeddings") as r:
        assert await r.json() == ["happy"]
    async with server.http.get(server.url + "/features") as r:
        assert (await r.json())["max_upload_size"] == server.state.config.max_upload_bytes


async def test_feature_flags_answered(server: Running) -> None:
    async with connect(server, "flags") as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": False}}))
        reply = json.loads(await ws.recv())
    assert reply["type"] == "feature_flags" and "max_upload_size" in reply["data"]


async def test_socket_without_client_id_gets_a_sid(server: Running) -> None:
    async with connect(server) as ws:
        hello = json.loads(await ws.recv())
    assert hello["type"] == "status" and len(hello["data"]["sid"]) >= 16


async def test_canvas_placeholder_when_not_built(server: Running) -> None:
    async with server.http.get(server.url + "/") as r:
        assert r.status == 200 and "make run" in await r.text()


async def test_canvas_and_extensions_served(server: Running) -> None:
    web_root = server.state.config.web_root
    (web_root / "assets").mkdir(parents=True)
    (web_root / "index.html").write_text("<html>canvas</html>")
    (web_root / "assets" / "app.js").write_text("console.log(1)")
    ext = server.tmp / "pack_web"
    (ext / "js").mkdir(parents=True)
    (ext / "js" / "hook.js").write_text("// hook")
    server.state.extensions = {"mypack": ext}
    async with server.http.get(server.url + "/") as r:
        assert await r.text() == "<html>canvas</html>"
    async with server.http.get(server.url + "/assets/app.js") as r:
        assert await r.text() == "console.log(1)"
    async with server.http.get(server.url + "/extensions") as r:
        assert await r.json() == ["/extensions/mypack/js/hook.js"]
    async with server.http.get(server.url + "/extensions/mypack/js/hook.js") as r:
        assert await r.text() == "// hook"
    async with server.http.get(server.url + "/extensions/mypack/..%2F..%2Fuser%2Floom.db") as r:
        assert r.status == 404
