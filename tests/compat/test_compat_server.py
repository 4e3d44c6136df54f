"""`server.PromptServer.instance` for packs: a route table Loom's server mounts, and `send_sync` to clients."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from compat.server import PromptServer


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
