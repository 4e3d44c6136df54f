"""`server.PromptServer.instance` for packs: a route table Loom's server mounts, and `send_sync` to clients."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from compat.server import PromptServer
from engine.context import NodeContext, RunControl, reset_current_context, set_current_context
from engine.events import NodeText


def test_routes_collect_pack_handlers() -> None:
    server = PromptServer()

    @server.routes.get("/my_pack/hello")
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hi": True})

    assert isinstance(server.routes, web.RouteTableDef)
    assert [route.path for route in server.routes] == ["/my_pack/hello"]  # type: ignore[attr-defined]
    assert isinstance(PromptServer.instance, PromptServer)


def test_send_sync_goes_to_the_bound_sender_and_is_dropped_before() -> None:
    server = PromptServer()
    server.send_sync("early", {"x": 0})
    sent: list[tuple[str, Any, str | None]] = []
    server.bind_sender(lambda event, data, sid: sent.append((event, data, sid)))
    server.send_sync("my_pack.status", {"x": 1}, "client-1")
    server.send_sync("my_pack.status", {"x": 2})
    assert sent == [("my_pack.status", {"x": 1}, "client-1"), ("my_pack.status", {"x": 2}, None)]


def test_unknown_attribute_names_itself() -> None:
    with pytest.raises(AttributeError, match=r"does not provide server\.PromptServer\.instance\.no_such_thing"):
        PromptServer.instance.no_such_thing  # noqa: B018


def test_the_queue_object_exists_by_name_and_fails_when_used() -> None:
    from compat.placeholder import HostFeatureMissing

    with pytest.raises(HostFeatureMissing, match=r"does not provide server\.PromptServer\.instance\.prompt_queue\.put"):
        PromptServer.instance.prompt_queue.put(object())


def test_send_progress_text_reports_on_the_running_job() -> None:
    events: list[Any] = []
    ctx = NodeContext("p1", "7", "7", "PackNode", events.append, RunControl())
    server = PromptServer()
    server.send_progress_text("outside any node", "7")  # no job to tell: dropped
    token = set_current_context(ctx)
    try:
        server.send_progress_text("step 2 of 5", 9)
        server.send_progress_text(b"bytes too", "7", sid="ignored")
    finally:
        reset_current_context(token)
    assert events == [NodeText("p1", "9", "step 2 of 5"), NodeText("p1", "7", "bytes too")]
