"""What a run reports besides images: `progress_text` binary frames for nodes that report text, and per-node
timing in the history entry (started, ended, cached) next to the reference's status messages."""

from __future__ import annotations

import struct

from tests.server.conftest import Running, connect, receive_until_done
from tests.server.test_queue import wait_history

TALK = {
    "1": {"class_type": "TestNumber", "inputs": {"value": 4}},
    "2": {"class_type": "TestTalk", "inputs": {"value": ["1", 0], "says": "héllo"}},
    "3": {"class_type": "TestShow", "inputs": {"value": ["2", 0]}},
}


def progress_texts(messages: list) -> list[tuple[str, str]]:
    found = []
    for m in messages:
        if isinstance(m, bytes) and struct.unpack(">I", m[:4])[0] == 3:
            (length,) = struct.unpack(">I", m[4:8])
            found.append((m[8 : 8 + length].decode(), m[8 + length :].decode()))
    return found


async def test_progress_text_frames(server: Running) -> None:
    async with connect(server, "plain") as ws:
        await ws.recv()
        _, body = await server.post_prompt(TALK, client_id="plain")
        messages = await receive_until_done(ws, body["prompt_id"])
    assert progress_texts(messages) == [("2", "héllo on 4")]  # text frames are not previews: every client gets them


async def test_history_times_every_node(server: Running) -> None:
    _, first = await server.post_prompt(TALK)
    entry = await wait_history(server, first["prompt_id"])
    nodes = entry["timings"]["nodes"]
    assert set(nodes) == {"1", "2", "3"}
    for timing in nodes.values():
        assert timing["cached"] is False
        assert entry["timings"]["started"] <= timing["started"] <= timing["ended"] <= entry["timings"]["finished"]
    assert nodes["1"]["ended"] <= nodes["2"]["started"] and nodes["2"]["ended"] <= nodes["3"]["started"]
    assert [m[0] for m in entry["status"]["messages"]] == ["execution_start", "execution_cached", "execution_success"]

    changed = {**TALK, "3": {"class_type": "TestShow", "inputs": {"value": ["1", 0]}}}  # 1 comes from the cache
    _, second = await server.post_prompt(changed)
    nodes = (await wait_history(server, second["prompt_id"]))["timings"]["nodes"]
    assert nodes["1"]["cached"] is True and nodes["1"]["started"] == nodes["1"]["ended"]
    assert nodes["3"]["cached"] is False and "2" not in nodes


async def test_history_times_a_failed_node_without_an_end(server: Running) -> None:
    failing = {
        "1": {"class_type": "TestNumber", "inputs": {"value": 6}},
        "2": {"class_type": "TestFail", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "TestShow", "inputs": {"value": ["2", 0]}},
    }
    _, body = await server.post_prompt(failing)
    entry = await wait_history(server, body["prompt_id"])
    nodes = entry["timings"]["nodes"]
    assert entry["status"]["status_str"] == "error"
    assert nodes["1"]["ended"] is not None and nodes["2"]["ended"] is None and "3" not in nodes
