"""Loom's HTTP + WebSocket server (aiohttp): the wire protocol of DESIGN.md section 6."""

from typing import Any


def __getattr__(name: str) -> Any:
    """`server.PromptServer` and `server.BinaryEventTypes` for node packs that `import server` expecting the
    ecosystem's host module."""
    if name in ("PromptServer", "BinaryEventTypes"):
        import compat.server

        return getattr(compat.server, name)
    raise AttributeError(f"module 'server' has no attribute {name!r}")
