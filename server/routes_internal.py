"""The front end's internal routes: the server's recent log lines (and subscribing to new ones over the WebSocket)
and where each model folder reads from."""

from __future__ import annotations

from aiohttp import web

from server.http import BadRequest, read_json
from server.state import STATE

SMALL_BODY = 64 * 1024


async def logs(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].logs.text())


async def logs_raw(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].logs.raw())


async def logs_subscribe(request: web.Request) -> web.Response:
    """`{enabled, clientId}`: while enabled, each new log line reaches that client as a `logs` message."""
    body = await read_json(request, SMALL_BODY)
    enabled, client_id = body.get("enabled"), body.get("clientId")
    if not isinstance(enabled, bool):
        raise BadRequest("'enabled' must be true or false", "invalid_request")
    if not isinstance(client_id, str) or not client_id:
        raise BadRequest("'clientId' must be the client id of an open WebSocket", "invalid_request")
    request.app[STATE].logs.subscribe(client_id, enabled)
    return web.Response(status=200)


async def folder_paths(request: web.Request) -> web.Response:
    folders = request.app[STATE].folders
    paths = {name: [str(p) for p in folders.model_dirs(name)] for name in sorted(folders.models)}
    paths["custom_nodes"] = [str(p) for p in folders.custom_nodes]
    return web.json_response(paths)


ROUTES = [
    ("GET", "/internal/logs", logs),
    ("GET", "/internal/logs/raw", logs_raw),
    ("PATCH", "/internal/logs/subscribe", logs_subscribe),
    ("GET", "/internal/folder_paths", folder_paths),
]
