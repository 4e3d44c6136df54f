"""Control of the running engine: /interrupt and /free."""

from __future__ import annotations

from aiohttp import web

from server.http import BadRequest, read_json
from server.state import STATE

SMALL_BODY = 64 * 1024


async def post_interrupt(request: web.Request) -> web.Response:
    """Interrupt the running job; with `{prompt_id}` only when that one is running."""
    body = await read_json(request, SMALL_BODY, allow_empty=True)
    prompt_id = body.get("prompt_id")
    if prompt_id is not None and not isinstance(prompt_id, str):
        raise BadRequest("'prompt_id' must be a string", "invalid_request")
    request.app[STATE].jobs.interrupt(prompt_id)
    return web.Response(status=200)


async def post_free(request: web.Request) -> web.Response:
    """`{unload_models?, free_memory?}`: done by the worker between jobs, never under a running node."""
    body = await read_json(request, SMALL_BODY, allow_empty=True)
    request.app[STATE].jobs.request_free(bool(body.get("unload_models")), bool(body.get("free_memory")))
    return web.Response(status=200)


ROUTES = [
    ("POST", "/interrupt", post_interrupt),
    ("POST", "/free", post_free),
]
