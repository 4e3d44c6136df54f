"""What a running node may ask of the engine: report progress and previews, warn, and check for interrupts."""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from engine.environment import NodeEnvironment
from engine.events import EventSink, NodeProgress, NodeText, NodeWarning, Preview


class Interrupted(Exception):
    """Raised inside a node when its job was interrupted; the executor reports it, not as an error."""


@dataclass(slots=True)
class RunControl:
    """Per-job switches shared between the thread that runs the job and whoever may interrupt it."""

    interrupt_event: threading.Event = field(default_factory=threading.Event)

    def interrupt(self) -> None:
        self.interrupt_event.set()

    @property
    def interrupted(self) -> bool:
        return self.interrupt_event.is_set()


@dataclass(slots=True)
class NodeContext:
    """Handed to a node while it runs (as a parameter for native nodes, through `current_context()` for others).

    `env` is the host's environment (folders, model manager); None only where a test builds a registry without one.
    """

    prompt_id: str
    node_id: str
    display_node: str
    class_type: str
    emit: EventSink
    control: RunControl
    env: NodeEnvironment | None = None
    prompt: dict[str, Any] | None = None
    extra_pnginfo: Any = None

    def check_interrupt(self) -> None:
        if self.control.interrupted:
            raise Interrupted(self.node_id)

    def progress(self, value: float, max: float, preview: Preview | None = None) -> None:
        """Report `value` of `max` steps done, then honour an interrupt: call between steps."""
        self.emit(NodeProgress(self.prompt_id, self.node_id, value, max, preview))
        self.check_interrupt()

    def warn(self, message: str) -> None:
        self.emit(NodeWarning(self.prompt_id, self.node_id, message))

    def text(self, message: str, node_id: str | None = None) -> None:
        """Report a line of text shown on the node (on `node_id`, e.g. the node a pack names, when given)."""
        self.emit(NodeText(self.prompt_id, node_id or self.node_id, message))


_current: ContextVar[NodeContext | None] = ContextVar("loom_node_context", default=None)


def current_context() -> NodeContext | None:
    """The context of the node running in this thread or task, for helpers that are not handed one."""
    return _current.get()


def set_current_context(ctx: NodeContext | None) -> Any:
    """Make `ctx` current; returns the token for `reset_current_context`."""
    return _current.set(ctx)


def reset_current_context(token: Any) -> None:
    _current.reset(token)
