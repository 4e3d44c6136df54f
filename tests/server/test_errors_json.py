"""Every answer is JSON: large bodies are read whole, client mistakes are 400/413 JSON, server faults 500 JSON with
an error id that is also in the log."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.server.conftest import Running

SIMPLE = {
    "1": {"class_type": "TestNumber", "inputs": {"value": 2}},
    "2": {"class_type": "TestShow", "inputs": {"value": ["1", 0]}},
}


def canvas_workflow(nodes: int) -> dict[str, Any]:
    """A canvas workflow of `nodes` nodes chained by links, the shape the canvas puts in extra_pnginfo."""
    return {
        "last_node_id": nodes,
        "last_link_id": nodes - 1,
        "nodes": [
            {
                "id": i,
                "type": "TestNumber",
                "pos": [i * 10, i * 5],
                "size": [210, 60],
                "inputs": [{"name": "value", "type": "INT", "link": i - 1 if i > 1 else None}],
                "outputs": [{"name": "INT", "type": "INT", "links": [i] if i < nodes else []}],
                "widgets_values": [i % 100],
                "properties": {"Node name for S&R": "TestNumber"},
            }
            for i in range(1, nodes + 1)
        ],
        "links": [[i, i, 0, i + 1, 0, "INT"] for i in range(1, nodes)],
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


async def test_ten_thousand_node_workflow_in_extra_pnginfo_is_accepted(server: Running) -> None:
    body = json.dumps({"prompt": SIMPLE, "extra_data": {"extra_pnginfo": {"workflow": canvas_workflow(10_000)}}})
    assert len(body) > 2 * 1024 * 1024  # far more than one read of the socket buffer
    for _ in range(3):
        async with server.http.post(server.url + "/prompt", data=body.encode()) as r:
            answer = await r.json()
            assert r.status == 200, answer
            assert answer["prompt_id"]


async def test_streamed_large_body_read_whole(server: Running) -> None:
    raw = json.dumps({"prompt": SIMPLE, "extra_data": {"pad": "x" * 3_000_000}}).encode()

    async def chunks():  # no Content-Length, many small chunks
        for start in range(0, len(raw), 4096):
            yield raw[start : start + 4096]

    async with server.http.post(server.url + "/prompt", data=chunks()) as r:
        assert r.status == 200, await r.text()


async def test_body_over_the_limit_is_413_json(make_server) -> None:
    srv = await make_server(max_prompt_bytes=1024 * 1024)
    raw = json.dumps({"prompt": SIMPLE, "extra_data": {"pad": "x" * 2_000_000}}).encode()
    async with srv.http.post(srv.url + "/prompt", data=raw) as r:
        assert r.status == 413
        assert (await r.json())["error"]["type"] == "payload_too_large"


async def test_deeply_nested_json_is_a_400(server: Running) -> None:
    raw = b'{"prompt": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    async with server.http.post(server.url + "/prompt", data=raw) as r:
        assert r.status == 400
        body = await r.json()
    assert body["error"]["type"] and "nested" in body["error"]["message"]


@pytest.mark.parametrize("name", ["a" * 300 + ".png", "bad\x00name.png"])
async def test_bad_file_names_are_400_json(server: Running, name: str) -> None:
    async with server.http.get(server.url + "/view", params={"filename": name}) as r:
        assert r.status == 400
        assert (await r.json())["error"]["type"] == "invalid_path"
    raw = (  # by hand: aiohttp's client will not put a NUL in a header
        b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="' + name.encode() + b'"\r\n'
        b"Content-Type: image/png\r\n\r\n\x89PNG not really\r\n--xyz--\r\n"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    async with server.http.post(server.url + "/upload/image", data=raw, headers=headers) as r:
        assert r.status == 400
        assert (await r.json())["error"]["type"]


async def test_malformed_multipart_is_400_json(server: Running) -> None:
    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    for raw in (b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n', b"garbage"):
        async with server.http.post(server.url + "/upload/image", data=raw, headers=headers) as r:
            assert r.status == 400, await r.text()
            assert (await r.json())["error"]["type"]


async def test_server_fault_is_500_json_with_an_id_in_the_log(
    server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    server.state.jobs.store.close()  # every query now fails inside sqlite3
    with caplog.at_level(logging.ERROR):
        async with server.http.get(server.url + "/history") as r:
            assert r.status == 500
            body = await r.json()
    error = body["error"]
    assert error["type"] == "server_error" and error["id"] in error["message"]
    assert any(error["id"] in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    "path",
    ["/view?filename=nothing.png", "/no/such/page.js", "/extensions/nopack/x.js", "/experiment/models/nofolder"],
)
async def test_not_found_is_the_same_json_error(server: Running, path: str) -> None:
    async with server.http.get(server.url + path) as r:
        assert r.status == 404
        error = (await r.json())["error"]
    assert error["type"] == "not_found" and error["message"]
