"""`server.PromptServer` and `server.BinaryEventTypes` for node packs, re-exported by Loom's own `server` package.

Packs use `PromptServer.instance` at import to:
- add HTTP routes (`routes`, an aiohttp RouteTableDef Loom's server mounts when it starts, also under /api);
- reach the aiohttp app (`app`): until Loom's server exists, a recorder whose `add_routes`, `router.add_static`,
  `router.add_get/post/route` and `middlewares.append` calls Loom replays onto its app when it starts;
- push WebSocket messages (`send_sync(event, data, sid)`: a BinaryEventTypes preview event with an image sends
  it as Loom's binary preview frame, one with bytes sends them after the event type as the reference does),
  dropped while no server runs (headless runs);
- rewrite incoming prompts (`add_on_prompt_handler`: each handler gets the /prompt body and returns it, in order).
- show text on a running node (`send_progress_text(text, node_id)`).
`supports` lists the optional features Loom has. The queue object (`prompt_queue`) and user manager are the
reference's machinery and exist by name only (compat.placeholder).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from compat import placeholder
from compat.host import refuse
from compat.previews import encode_preview
from engine.context import current_context

Sender = Callable[[Any, Any, str | None], None]
log = logging.getLogger("loom.packs")


class BinaryEventTypes:
    PREVIEW_IMAGE = 1
    UNENCODED_PREVIEW_IMAGE = 2
    TEXT = 3
    PREVIEW_IMAGE_WITH_METADATA = 4


_PREVIEW_EVENTS = (BinaryEventTypes.PREVIEW_IMAGE, BinaryEventTypes.UNENCODED_PREVIEW_IMAGE)


class _Router:
    """Records router calls made before Loom's app exists."""

    def __init__(self, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> None:
        self._calls = calls

    def _record(self, method: str) -> Callable[..., None]:
        def record(*args: Any, **kwargs: Any) -> None:
            self._calls.append((method, args, kwargs))

        return record

    def __getattr__(self, name: str) -> Any:
        if name in ("add_static", "add_get", "add_post", "add_put", "add_delete", "add_patch", "add_route"):
            return self._record(name)
        refuse("server.PromptServer.instance.app.router", name)


class PendingApp:
    """`PromptServer.instance.app` before Loom's server starts: what packs do to it is replayed onto the real app."""

    def __init__(self) -> None:
        self.router_calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.route_tables: list[Any] = []
        self.middlewares: list[Any] = []
        self.router = _Router(self.router_calls)

    def add_routes(self, routes: Any) -> None:
        self.route_tables.append(list(routes))

    def replay(self, app: Any) -> None:
        for routes in self.route_tables:
            app.add_routes(routes)
        for method, args, kwargs in self.router_calls:
            getattr(app.router, method)(*args, **kwargs)
        app.middlewares.extend(self.middlewares)

    def __getattr__(self, name: str) -> Any:
        refuse("server.PromptServer.instance.app (before the server starts)", name)


class PromptServer:
    instance: ClassVar[PromptServer]

    def __init__(self) -> None:
        self._routes: Any = None
        self._sender: Sender | None = None
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.last_prompt_id: str | None = None
        self.supports = {"custom_nodes_from_web"}
        self.on_prompt_handlers: list[Callable[[dict[str, Any]], dict[str, Any]]] = []
        self.app: Any = PendingApp()
        self.loop: Any = None
        self.number = 0
        self.prompt_queue = placeholder.Namespace("server.PromptServer.instance.prompt_queue")
        self.user_manager = placeholder.Namespace("server.PromptServer.instance.user_manager")

    @property
    def routes(self) -> Any:
        """The packs' RouteTableDef (aiohttp is imported on first use, not when a headless run imports this)."""
        if self._routes is None:
            from aiohttp import web

            self._routes = web.RouteTableDef()
        return self._routes

    def bind_sender(self, sender: Sender | None) -> None:
        """Called by Loom's server: `sender(event, data, sid)` delivers a message (sid None: to every client); a
        preview event's data is a Preview."""
        self._sender = sender

    def bind_app(self, app: Any, loop: Any) -> None:
        """Called by Loom's server once its app exists: replay what packs did to the pending app."""
        pending = self.app
        if isinstance(pending, PendingApp):
            pending.replay(app)
        self.app = app
        self.loop = loop

    def send_sync(self, event: Any, data: Any, sid: str | None = None) -> None:
        if self._sender is None:
            return
        if event in _PREVIEW_EVENTS and not isinstance(data, bytes | bytearray):  # bytes are sent as they are
            self._sender(event, encode_preview(tuple(data) if isinstance(data, list) else data), sid)
            return
        self._sender(event, data, sid)

    async def send(self, event: Any, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    async def send_json(self, event: str, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    def add_on_prompt_handler(self, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.on_prompt_handlers.append(handler)

    def trigger_on_prompt(self, json_data: dict[str, Any]) -> dict[str, Any]:
        """Run the packs' prompt handlers in order; one that raises is logged and skipped."""
        for handler in self.on_prompt_handlers:
            try:
                json_data = handler(json_data)
            except Exception:
                log.exception("a node pack's prompt handler %r failed; the prompt goes on without it", handler)
        return json_data

    def send_progress_text(self, text: str | bytes, node_id: str, sid: str | None = None) -> None:
        """Text shown on a node while it runs: goes to the client of the running job (`sid` is implied by it);
        outside a running node there is no job to tell, and the text is dropped."""
        ctx = current_context()
        if ctx is not None:
            ctx.text(text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text), str(node_id))

    def __getattr__(self, name: str) -> Any:
        refuse("server.PromptServer.instance", name)


PromptServer.instance = PromptServer()
