"""Small HTTP helpers shared by the route modules: JSON errors, size-limited JSON bodies, and the one middleware
that turns every failure into a JSON answer."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from engine.errors import ErrorType

log = logging.getLogger("loom.http")
CHUNK = 256 * 1024


class BadRequest(Exception):
    """A request the client got wrong; answered as a 400 (or `status`) JSON error, never a 500."""

    def __init__(
        self, message: str, type: str = ErrorType.INVALID_PROMPT, status: int = 400, details: str = ""
    ) -> None:
        super().__init__(message)
        self.message, self.type, self.status, self.details = message, type, status, details

    def response(self) -> web.Response:
        return json_error(self.message, self.type, self.status, self.details)


def json_error(
    message: str,
    type: str = ErrorType.INVALID_PROMPT,
    status: int = 400,
    details: str = "",
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """The one shape of every error answer: `{"error": {type, message, details, extra_info, ...extra}}`."""
    error = {"type": type, "message": message, "details": details, "extra_info": {}, **extra}
    return web.json_response({"error": error, "node_errors": {}}, status=status, headers=headers)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, refusing (413) anything over `limit` bytes whether or not it declares its length."""
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(f"request body is larger than {limit} bytes", "payload_too_large", 413)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(CHUNK):  # one read returns only what has arrived so far
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"request body is larger than {limit} bytes", "payload_too_large", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request, limit: int, allow_empty: bool = False) -> dict[str, Any]:
    """A JSON object body; an empty body is `{}` when `allow_empty`."""
    raw = await read_body(request, limit)
    if not raw.strip() and allow_empty:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest("the request body is JSON nested too deeply") from exc
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


@web.middleware
async def errors_as_json(request: web.Request, handler: Any) -> web.StreamResponse:
    """The outermost middleware: client mistakes -> 4xx JSON; anything else -> a 500 JSON naming an error id that
    the log has with the traceback."""
    try:
        return await handler(request)
    except BadRequest as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status < 500:
            return json_error(exc.reason, "http_error", exc.status)
        return server_fault(request, exc)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        return server_fault(request, exc)


def server_fault(request: web.Request, exc: BaseException) -> web.Response:
    error_id = uuid.uuid4().hex[:12]
    log.error("error %s answering %s %s", error_id, request.method, request.path, exc_info=exc)
    message = f"internal error {error_id} ({type(exc).__name__}); the server log has the details"
    return json_error(message, "server_error", 500, id=error_id)
