"""Every validation error class gives the documented 400 body; malformed bodies give a 400 JSON error, never a 500."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.polling import wait_for
from tests.server.conftest import Running


def save(value: Any = ("1", 0)) -> dict[str, Any]:
    return {"class_type": "TestSaveImage", "inputs": {"value": list(value) if isinstance(value, tuple) else value}}


NUMBER = {"class_type": "TestNumber", "inputs": {"value": 3}}


async def test_unknown_class_is_missing_node_type(server: Running) -> None:
    """As the ecosystem answers it (and as a workflow file with the same node is reported: engine.errors)."""
    unknown = {"class_type": "NoSuchNode", "inputs": {}, "_meta": {"title": "Fancy"}}
    status, body = await server.post_prompt({"1": unknown, "2": save()})
    assert status == 400
    error = body["error"]
    assert error["type"] == "missing_node_type" and error["message"].startswith("Node 'Fancy' not found")
    assert error["extra_info"] == {
        "node_id": "1",
        "class_type": "NoSuchNode",
        "node_title": "Fancy",
        "missing_node_types": ["NoSuchNode"],
    }
    assert "NoSuchNode" in error["details"]
    assert body["node_errors"]["1"]["errors"][0]["type"] == "missing_node_type"


async def test_a_node_without_class_type_is_missing_node_type(server: Running) -> None:
    status, body = await server.post_prompt({"1": {"inputs": {}}, "2": save()})
    assert status == 400 and body["error"]["type"] == "missing_node_type"


async def test_no_outputs(server: Running) -> None:
    status, body = await server.post_prompt({"1": NUMBER})
    assert status == 400 and body["error"]["type"] == "prompt_no_outputs"


@pytest.mark.parametrize(
    ("prompt", "node", "error_type"),
    [
        ({"1": NUMBER, "2": {"class_type": "TestSaveImage", "inputs": {}}}, "2", "required_input_missing"),
        ({"1": NUMBER, "2": save(("9", 0))}, "2", "bad_linked_input"),
        ({"1": NUMBER, "2": save(("1", 5))}, "2", "bad_linked_input"),
        (
            {"1": NUMBER, "2": {"class_type": "TestSaveImage", "inputs": {"value": ["1", 0], "prefix": ["1", 0]}}},
            "2",
            "return_type_mismatch",
        ),
        ({"1": {"class_type": "TestNumber", "inputs": {"value": "many"}}, "2": save()}, "1", "invalid_input_type"),
        ({"1": {"class_type": "TestNumber", "inputs": {"value": -1}}, "2": save()}, "1", "value_smaller_than_min"),
        ({"1": {"class_type": "TestNumber", "inputs": {"value": 5000}}, "2": save()}, "1", "value_bigger_than_max"),
        (
            {"1": {"class_type": "TestAdd", "inputs": {"a": ["2", 0], "b": ["2", 0]}},
             "2": {"class_type": "TestAdd", "inputs": {"a": ["1", 0], "b": ["1", 0]}},
             "3": save()},
            "1",
            "dependency_cycle",
        ),
    ],
)  # fmt: skip
async def test_input_errors(server: Running, prompt: dict[str, Any], node: str, error_type: str) -> None:
    status, body = await server.post_prompt(prompt)
    assert status == 400
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    errors = body["node_errors"][node]
    assert error_type in [e["type"] for e in errors["errors"]]
    assert errors["class_type"] == prompt[node]["class_type"]
    assert all({"type", "message", "details", "extra_info"} <= set(e) for e in errors["errors"])
    assert all("input_name" in e["extra_info"] for e in errors["errors"] if e["type"] != "dependency_cycle")


async def test_value_not_in_list_and_custom_validation(server: Running) -> None:
    from engine.native import Combo, String, node

    @node(category="testing", output_node=True)
    def TestChoice(mode: str = Combo(["a", "b"])) -> dict:
        return {"ui": {"text": [mode]}}

    @node(category="testing", output_node=True, validate=lambda mode: mode != "b" or "b is refused")
    def TestChecked(mode: str = String("a")) -> dict:
        return {"ui": {"text": [mode]}}

    server.state.registry.add_native(TestChoice)
    server.state.registry.add_native(TestChecked)
    status, body = await server.post_prompt({"1": {"class_type": "TestChoice", "inputs": {"mode": "z"}}})
    assert status == 400 and body["node_errors"]["1"]["errors"][0]["type"] == "value_not_in_list"
    status, body = await server.post_prompt({"1": {"class_type": "TestChecked", "inputs": {"mode": "b"}}})
    assert status == 400 and body["node_errors"]["1"]["errors"][0]["type"] == "custom_validation_failed"


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"[]", b'"x"', b'{"prompt": 5}', b'{"prompt": []}', b'{"prompt": {"1": 5}}',
     b'{"prompt": {"1": {"inputs": {}}}}', b'{"prompt": {}, "client_id": 7}', b'{"prompt": {}, "extra_data": 1}',
     b'{"prompt": {}, "number": "x"}', b'{"prompt": {}, "number": NaN}', b'{"prompt": {}, "prompt_id": 3}',
     b'{"prompt": {}, "partial_execution_targets": "1"}', b"\xff\xfe"],
)  # fmt: skip
async def test_malformed_prompt_bodies(server: Running, raw: bytes) -> None:
    async with server.http.post(server.url + "/prompt", data=raw) as r:
        assert r.status == 400
        body = await r.json()
    assert isinstance(body["error"]["message"], str) and body["error"]["type"]


@pytest.mark.parametrize("path", ["/queue", "/history", "/interrupt", "/free"])
@pytest.mark.parametrize("raw", [b"{", b"[1]", b'{"delete": "x"}', b'{"delete": [1]}', b'{"prompt_id": 5}'])
async def test_malformed_bodies_elsewhere(server: Running, path: str, raw: bytes) -> None:
    async with server.http.post(server.url + path, data=raw) as r:
        assert r.status in (200, 400)  # a body that does not apply to this route is ignored, never a 500
        if r.status == 400:
            assert "error" in await r.json()


async def test_bad_query_parameters(server: Running) -> None:
    async with server.http.get(server.url + "/history", params={"max_items": "x"}) as r:
        assert r.status == 400
    async with server.http.get(server.url + "/view") as r:
        assert r.status == 400


async def test_client_prompt_id_used_and_duplicates_refused(server: Running) -> None:
    wait = {"value": ["1", 0], "path": str(server.tmp / "never")}
    prompt = {
        "1": NUMBER,
        "2": {"class_type": "TestWaitFile", "inputs": wait},
        "3": {"class_type": "TestShow", "inputs": {"value": ["2", 0]}},
    }
    status, body = await server.post_prompt(prompt, prompt_id="mine-1")
    assert status == 200 and body["prompt_id"] == "mine-1"
    status, body = await server.post_prompt(prompt, prompt_id="mine-1")
    assert status == 400 and "already queued" in body["error"]["message"]
    async with server.http.post(server.url + "/interrupt") as r:
        assert r.status == 200
    await asyncio.to_thread(wait_for, lambda: server.state.jobs.store.history_entry("mine-1") is not None)
    status, body = await server.post_prompt(prompt, prompt_id="mine-1")  # finished: its history keeps the id
    assert status == 400 and "already ran" in body["error"]["message"]
