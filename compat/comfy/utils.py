"""`comfy.utils` for node packs: `ProgressBar`, which reports through the running node's context."""

from __future__ import annotations

import io
from typing import Any

from compat.host import refuse
from engine.context import NodeContext, current_context
from engine.events import Preview

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
            ctx.progress(self.current, self.total, _preview(preview))

    def update(self, value: float) -> None:
        self.update_absolute(self.current + value)


def _preview(preview: Any) -> Preview | None:
    """Accept a Preview, or the ecosystem's `(format, PIL image, max size)` tuple, encoding the image."""
    if preview is None or isinstance(preview, Preview):
        return preview
    if isinstance(preview, tuple) and len(preview) >= 2 and hasattr(preview[1], "save"):
        fmt = "PNG" if str(preview[0]).upper() == "PNG" else "JPEG"
        image = preview[1]
        if len(preview) > 2 and preview[2]:
            image = image.copy()
            image.thumbnail((preview[2], preview[2]))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format=fmt)
        return Preview(fmt, buffer.getvalue())
    return None


def __getattr__(name: str) -> Any:
    refuse("comfy.utils", name)
