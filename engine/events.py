"""The typed events the executor emits. The server turns them into WebSocket messages; the CLI prints them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Preview:
    """An encoded preview image: `format` is "JPEG" or "PNG"."""

    format: str
    data: bytes


@dataclass(frozen=True, slots=True)
class JobStarted:
    prompt_id: str


@dataclass(frozen=True, slots=True)
class NodesCached:
    prompt_id: str
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NodeExecuting:
    prompt_id: str
    node: str
    display_node: str
    class_type: str


@dataclass(frozen=True, slots=True)
class NodeProgress:
    prompt_id: str
    node: str
    value: float
    max: float
    preview: Preview | None = None


@dataclass(frozen=True, slots=True)
class NodeExecuted:
    """A node's display output; also sent for cached output nodes so clients show their images."""

    prompt_id: str
    node: str
    display_node: str
    output: Mapping[str, Any]
    cached: bool = False
    parent_node: str | None = None  # the node whose expansion created this one
    real_node: str | None = None  # the prompt node it descends from (itself for a prompt node)


@dataclass(frozen=True, slots=True)
class NodeWarning:
    prompt_id: str
    node: str
    message: str


@dataclass(frozen=True, slots=True)
class NodeText:
    """A line of text a running node reports (shown on the node by front ends, as `progress_text`)."""

    prompt_id: str
    node: str
    text: str


@dataclass(frozen=True, slots=True)
class NodeFinished:
    """A node ran to completion (not sent for nodes served from the cache); the history times nodes with it."""

    prompt_id: str
    node: str


@dataclass(frozen=True, slots=True)
class JobSucceeded:
    prompt_id: str
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JobFailed:
    prompt_id: str
    node_id: str
    node_type: str
    executed: tuple[str, ...]
    exception_message: str
    exception_type: str
    traceback: tuple[str, ...]
    current_inputs: Mapping[str, Any]
    current_outputs: tuple[str, ...]  # the nodes whose outputs were known when it failed


@dataclass(frozen=True, slots=True)
class JobInterrupted:
    prompt_id: str
    node_id: str | None
    node_type: str | None
    executed: tuple[str, ...]


Event = (
    JobStarted
    | NodesCached
    | NodeExecuting
    | NodeProgress
    | NodeExecuted
    | NodeWarning
    | NodeText
    | NodeFinished
    | JobSucceeded
    | JobFailed
    | JobInterrupted
)
JOB_ENDS = (JobSucceeded, JobFailed, JobInterrupted)  # the last event of every job
EventSink = Callable[[Event], None]


def discard(event: Event) -> None:
    """An EventSink for runs nobody watches."""
