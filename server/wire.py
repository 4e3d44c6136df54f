"""The one mapping from engine events to the wire protocol's messages (docs/protocol.md).

The WebSocket frames (server/messages.py), the history entry's `status.messages` (recorded by engine.jobs through
`history_messages`, which the composition root hands it) and the CLI's progress lines all come from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.events import (
    Event,
    JobFailed,
    JobInterrupted,
    JobStarted,
    JobSucceeded,
    NodeExecuted,
    NodeExecuting,
    NodeFinished,
    NodeProgress,
    NodesCached,
    NodeText,
    NodeWarning,
    Preview,
)


@dataclass(frozen=True, slots=True)
class WireMessage:
    """One message: JSON `{"type", "data"}`, or a binary preview (`preview` set, `data` empty). `droppable`: a later
    message supersedes it (a slow client may lose it). `history`: also recorded in the history entry."""

    type: str
    data: dict[str, Any]
    droppable: bool = False
    history: bool = False
    preview: Preview | None = None


def _ms() -> int:
    return int(time.time() * 1000)


def _started(e: JobStarted) -> list[WireMessage]:
    return [WireMessage("execution_start", {"prompt_id": e.prompt_id, "timestamp": _ms()}, history=True)]


def _cached(e: NodesCached) -> list[WireMessage]:
    data = {"nodes": list(e.nodes), "prompt_id": e.prompt_id, "timestamp": _ms()}
    return [WireMessage("execution_cached", data, history=True)]


def _executing(e: NodeExecuting) -> list[WireMessage]:
    return [executing(e.prompt_id, e.node, e.display_node)]


def _progress(e: NodeProgress) -> list[WireMessage]:
    data = {"value": e.value, "max": e.max, "node": e.node, "prompt_id": e.prompt_id}
    out = [WireMessage("progress", data, droppable=True)]
    if e.preview is not None:
        out.append(WireMessage("preview", {"node": e.node, "prompt_id": e.prompt_id}, True, preview=e.preview))
    return out


def _executed(e: NodeExecuted) -> list[WireMessage]:
    data = {"node": e.node, "display_node": e.display_node, "output": e.output, "prompt_id": e.prompt_id}
    return [WireMessage("executed", data)]


def _text(e: NodeText) -> list[WireMessage]:
    """`progress_text`: sent as a binary frame (server.messages), superseded by the node's next line."""
    return [WireMessage("progress_text", {"node": e.node, "prompt_id": e.prompt_id, "text": e.text}, droppable=True)]


def _finished(e: NodeFinished) -> list[WireMessage]:
    return []  # clients learn a node is done from the next `executing`; the history records the time (engine.jobs)


def _warning(e: NodeWarning) -> list[WireMessage]:
    data = {"prompt_id": e.prompt_id, "node": e.node, "message": e.message, "timestamp": _ms()}
    return [WireMessage("node_warning", data, history=True)]


def _succeeded(e: JobSucceeded) -> list[WireMessage]:
    done = WireMessage("execution_success", {"prompt_id": e.prompt_id, "timestamp": _ms()}, history=True)
    return [done, executing(e.prompt_id, None)]


def _where(e: JobFailed | JobInterrupted) -> dict[str, Any]:
    return {"prompt_id": e.prompt_id, "node_id": e.node_id, "node_type": e.node_type, "executed": list(e.executed)}


def _failed(e: JobFailed) -> list[WireMessage]:
    data = {
        **_where(e),
        "exception_message": e.exception_message,
        "exception_type": e.exception_type,
        "traceback": list(e.traceback),
        "current_inputs": dict(e.current_inputs),
        "current_outputs": list(e.current_outputs),
        "timestamp": _ms(),
    }
    return [WireMessage("execution_error", data, history=True), executing(e.prompt_id, None)]


def _interrupted(e: JobInterrupted) -> list[WireMessage]:
    data = {**_where(e), "timestamp": _ms()}
    return [WireMessage("execution_interrupted", data, history=True), executing(e.prompt_id, None)]


_MAPPING: dict[type, Callable[[Any], list[WireMessage]]] = {
    JobStarted: _started,
    NodesCached: _cached,
    NodeExecuting: _executing,
    NodeProgress: _progress,
    NodeExecuted: _executed,
    NodeWarning: _warning,
    NodeText: _text,
    NodeFinished: _finished,
    JobSucceeded: _succeeded,
    JobFailed: _failed,
    JobInterrupted: _interrupted,
}


def wire_messages(event: Event) -> list[WireMessage]:
    """The messages one event becomes, in the order they are sent."""
    return _MAPPING[type(event)](event)


def history_messages(event: Event) -> list[list[Any]]:
    """The `[type, data]` pairs an event adds to its job's history entry (`status.messages`)."""
    return [[m.type, m.data] for m in wire_messages(event) if m.history]


def executing(prompt_id: str, node: str | None, display_node: str | None = None) -> WireMessage:
    """`executing`: the node now running; `node: null` closes the job (after its history entry is written)."""
    return WireMessage("executing", {"node": node, "display_node": display_node or node, "prompt_id": prompt_id})
