"""Binary previews go only to clients that ask for them (a feature_flags message) unless --preview-method is set:
a plain API client that reads every binary frame as an output image gets none."""

from __future__ import annotations

import json

from tests.server.conftest import Running, connect, receive_until_done
from tests.server.test_api import image_workflow


async def run_watched(srv: Running, client_id: str, ask: bool, value: int) -> list:
    async with connect(srv, client_id) as ws:
        await ws.recv()  # status
        if ask:
            await ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": False}}))
            assert json.loads(await ws.recv())["type"] == "feature_flags"
        _, body = await srv.post_prompt(image_workflow(value=value), client_id=client_id)
        return await receive_until_done(ws, body["prompt_id"])


async def test_plain_client_gets_no_previews(server: Running) -> None:
    messages = await run_watched(server, "script", ask=False, value=11)
    assert not any(isinstance(m, bytes) for m in messages)
    assert any(isinstance(m, dict) and m["type"] == "progress" for m in messages)


async def test_front_end_that_asks_gets_previews(server: Running) -> None:
    messages = await run_watched(server, "canvas", ask=True, value=12)
    assert any(isinstance(m, bytes) for m in messages)


async def test_preview_method_sends_them_to_everyone(make_server) -> None:
    srv = await make_server(preview_method="auto")
    messages = await run_watched(srv, "script", ask=False, value=13)
    assert any(isinstance(m, bytes) for m in messages)
