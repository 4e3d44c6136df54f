"""Whether the server is answering an HTTP request right now, for background work that holds the GIL (the model
layer's import warm-up) to wait for the gaps between requests instead of slowing every answer down."""

from __future__ import annotations

import threading
from typing import Any

from aiohttp import web


class RequestActivity:
    """Counts the HTTP requests being answered; WebSocket connections aside, as they stay open for a session."""

    def __init__(self) -> None:
        self._active = 0  # changed on the event loop's thread only
        self._quiet = threading.Event()
        self._quiet.set()

    @property
    def active(self) -> int:
        return self._active

    def wait_quiet(self, timeout: float) -> bool:
        """Wait until no request is being answered, at most `timeout` seconds (from any thread); True if quiet."""
        return self._quiet.wait(timeout)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        self._active += 1
        self._quiet.clear()
        try:
            return await handler(request)
        finally:
            self._active -= 1
            if self._active == 0:
                self._quiet.set()
