"""Node packs on the server: `GET /custom_nodes`, and the routes and messages packs add through PromptServer.

`GET /custom_nodes` answers `{"enabled": bool, "packs": [summary, ...], "clashes": [clash, ...]}` where a summary
is engine.packs.PackSummary as JSON (`name`, `path`, `status` "ok"|"failed"|"disabled", `module`, `nodes`,
`ignored`, `rejected` [{class_type, reason}], `declared`, `count` ("N of M nodes"), `seconds`, `slow`, `error`,
`traceback`, `web_directory`, `warnings`) in load order, and a clash is
`{"class_type", "kept", "ignored"}` (the source that keeps the node type and the one that lost it).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from functools import partial
from typing import Any

from aiohttp import web

from server.messages import PREVIEW, Frame, preview_frame
from server.state import STATE, ServerState


async def custom_nodes(request: web.Request) -> web.Response:
    state = request.app[STATE]
    clashes = [{"class_type": c.class_type, "kept": c.kept, "ignored": c.ignored} for c in state.registry.clashes]
    body = {"enabled": state.packs is not None, "packs": [p.to_json() for p in state.packs or ()], "clashes": clashes}
    return web.json_response(body)


log = logging.getLogger("loom.packs")


def _send(hub: Any, event: Any, data: Any, sid: str | None) -> None:
    """A pack's message: a preview image event goes out as Loom's binary preview frame, anything else as JSON."""
    from compat.server import BinaryEventTypes

    if isinstance(data, bytes | bytearray) and isinstance(event, int):  # a binary event, framed as the reference
        kind = PREVIEW if event in (BinaryEventTypes.PREVIEW_IMAGE, BinaryEventTypes.UNENCODED_PREVIEW_IMAGE) else ""
        hub.send_frame(Frame(data=struct.pack(">I", event) + bytes(data), droppable=True, type=kind), sid)
        return
    if event in (BinaryEventTypes.PREVIEW_IMAGE, BinaryEventTypes.UNENCODED_PREVIEW_IMAGE):
        if data is not None:
            hub.send_frame(preview_frame(data.format, data.data), sid)
        return
    hub.send(event, data, sid)


async def _bind_loop(app: web.Application) -> None:
    from compat.server import PromptServer

    PromptServer.instance.loop = asyncio.get_running_loop()


def on_prompt(state: ServerState, body: Any) -> Any:
    """The /prompt body after the packs' prompt handlers (`PromptServer.instance.add_on_prompt_handler`)."""
    if state.packs is None or not isinstance(body, dict):
        return body
    from compat.server import PromptServer

    return PromptServer.instance.trigger_on_prompt(body)


ROUTES = [("GET", "/custom_nodes", custom_nodes)]


def attach(app: web.Application, state: ServerState) -> None:
    """Mount the packs' own routes (also under /api) and connect `PromptServer.instance` to this server.

    A route a pack declared twice (imported again) counts once, the newest; one that collides with a route
    already there is left out with a warning, since a pack never stops Loom.
    """
    if state.packs is None:
        return
    from compat.host import bound
    from compat.server import PromptServer

    server = PromptServer.instance
    seen: set[tuple[str, str]] = set()
    for route in reversed(list(server.routes)):
        key = (getattr(route, "method", ""), getattr(route, "path", getattr(route, "prefix", "")))
        if key in seen:
            continue
        seen.add(key)
        try:
            if isinstance(route, web.RouteDef):
                for prefix in ("", "/api"):
                    app.router.add_route(route.method, prefix + route.path, route.handler, **route.kwargs)
            else:
                route.register(app.router)
        except (RuntimeError, ValueError) as exc:
            log.warning("a node pack's route %s %s is not served: %s", key[0], key[1], exc)
    server.bind_sender(partial(_send, state.hub))
    server.bind_app(app, None)
    app.on_startup.append(_bind_loop)
    host = bound()
    if host is not None:
        host.interrupt = state.jobs.interrupt
