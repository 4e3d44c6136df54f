"""`comfy.utils` for node packs: `ProgressBar`, which reports through the running node's context."""

from __future__ import annotations

from typing import Any

from compat.host import refuse
from compat.previews import encode_preview
from engine.context import NodeContext, current_context

PROGRESS_BAR_ENABLED = True


class ProgressBar:
    """Steps done of `total`, sent as the node's `progress` events; an interrupted job stops at the next update.

    The node context is captured when the bar is made, so updates from a worker thread the node started still
    reach the right node.
    """

    def __init__(self, total: int, node_id: str | None = None) -> None:
        self.total = total
        self.current = 0
        self._ctx: NodeContext | None = current_context()

    def update_absolute(self, value: float, total: float | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total) if self.total else value
        ctx = self._ctx or current_context()
        if ctx is not None:
            ctx.progress(self.current, self.total, encode_preview(preview))

    def update(self, value: float) -> None:
        self.update_absolute(self.current + value)


def __getattr__(name: str) -> Any:
    refuse("comfy.utils", name)
