"""Small HTTP helpers shared by the route modules: JSON errors and size-limited JSON bodies."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class BadRequest(Exception):
    """A request the client got wrong; answered as a 400 (or `status`) JSON error, never a 500."""

    def __init__(self, message: str, type: str = "invalid_prompt", status: int = 400, details: str = "") -> None:
        super().__init__(message)
        self.message, self.type, self.status, self.details = message, type, status, details

    def response(self) -> web.Response:
        return json_error(self.message, self.type, self.status, self.details)


def json_error(message: str, type: str = "invalid_prompt", status: int = 400, details: str = "") -> web.Response:
    body = {"error": {"type": type, "message": message, "details": details, "extra_info": {}}, "node_errors": {}}
    return web.json_response(body, status=status)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, refusing (413) anything over `limit` bytes whether or not it declares its length."""
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(f"request body is larger than {limit} bytes", "payload_too_large", 413)
    data = await request.content.read(limit + 1)
    if len(data) > limit:
        raise BadRequest(f"request body is larger than {limit} bytes", "payload_too_large", 413)
    return data


async def read_json(request: web.Request, limit: int, allow_empty: bool = False) -> dict[str, Any]:
    """A JSON object body; an empty body is `{}` when `allow_empty`."""
    raw = await read_body(request, limit)
    if not raw.strip() and allow_empty:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


@web.middleware
async def errors_as_json(request: web.Request, handler: Any) -> web.StreamResponse:
    """BadRequest -> its JSON error; aiohttp's own 4xx (413 from client_max_size, 404, 405) -> JSON too."""
    try:
        return await handler(request)
    except BadRequest as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.status != 500:
            return json_error(exc.reason, "http_error", exc.status)
        raise
