"""`server.PromptServer` for node packs, re-exported by Loom's own `server` package.

Packs use `PromptServer.instance.routes` to add HTTP routes (collected in an aiohttp RouteTableDef that Loom's
server adds to its app when it starts, so packs must declare routes at import) and
`PromptServer.instance.send_sync(event, data, sid)` to push a WebSocket message to one client or to all, and
`send_progress_text(text, node_id)` to show text on a running node.
Messages sent before a server is running (headless runs) are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from compat.host import refuse
from engine.context import current_context

Sender = Callable[[str, Any, str | None], None]


class PromptServer:
    instance: ClassVar[PromptServer]

    def __init__(self) -> None:
        self._routes: Any = None
        self._sender: Sender | None = None
        self.client_id: str | None = None
        self.last_node_id: str | None = None

    @property
    def routes(self) -> Any:
        """The packs' RouteTableDef (aiohttp is imported on first use, not when a headless run imports this)."""
        if self._routes is None:
            from aiohttp import web

            self._routes = web.RouteTableDef()
        return self._routes

    def bind_sender(self, sender: Sender | None) -> None:
        """Called by Loom's server: `sender(event, data, sid)` delivers a message (sid None: to every client)."""
        self._sender = sender

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        if self._sender is not None:
            self._sender(event, data, sid)

    async def send(self, event: str, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    def send_progress_text(self, text: str | bytes, node_id: str, sid: str | None = None) -> None:
        """Text shown on a node while it runs: goes to the client of the running job (`sid` is implied by it);
        outside a running node there is no job to tell, and the text is dropped."""
        ctx = current_context()
        if ctx is not None:
            ctx.text(text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text), str(node_id))

    def __getattr__(self, name: str) -> Any:
        refuse("server.PromptServer.instance", name)


PromptServer.instance = PromptServer()
