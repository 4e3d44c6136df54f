"""Workflows in the API format: node id -> {class_type, inputs, _meta}; a link is `[node id, output index]`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from engine.errors import ErrorType


class Link(NamedTuple):
    """An input fed by output `output` of node `node`."""

    node: str
    output: int


class WorkflowError(ValueError):
    """A body that is not a workflow at all (`invalid_prompt`), or a node without a type (`missing_node_type`)."""

    def __init__(self, message: str, node_id: str | None = None, type: ErrorType = ErrorType.INVALID_PROMPT) -> None:
        super().__init__(message)
        self.message = message
        self.node_id = node_id
        self.type = type


@dataclass(slots=True)
class WorkflowNode:
    id: str
    class_type: str
    inputs: dict[str, Any]
    title: str | None = None

    @property
    def label(self) -> str:
        """How messages name the node: its id, and its title when it has one."""
        return f"{self.id} ({self.title})" if self.title else self.id


@dataclass(slots=True)
class Workflow:
    nodes: dict[str, WorkflowNode]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.nodes

    def __getitem__(self, node_id: str) -> WorkflowNode:
        return self.nodes[node_id]

    def __len__(self) -> int:
        return len(self.nodes)

    def find(self, ref: str) -> WorkflowNode | None:
        """A node by id, else the one node with that title (None when absent or ambiguous)."""
        if ref in self.nodes:
            return self.nodes[ref]
        titled = [n for n in self.nodes.values() if n.title == ref]
        return titled[0] if len(titled) == 1 else None

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for node_id, n in self.nodes.items():
            body: dict[str, Any] = {"class_type": n.class_type, "inputs": {k: _encode(v) for k, v in n.inputs.items()}}
            if n.title is not None:
                body["_meta"] = {"title": n.title}
            out[node_id] = body
        return out


def _encode(value: Any) -> Any:
    if type(value) is Link:
        return [value.node, value.output]
    if isinstance(value, list | tuple):
        return {"__value__": list(value)}
    return value


def is_api_link(value: Any) -> bool:
    """`[source node id, output index]` in the API format: exactly two items, a string id then an int."""
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def decode_input(value: Any) -> Any:
    """An API-format input value: a link, an unwrapped `{"__value__": [...]}` list, or the literal itself."""
    if isinstance(value, list | tuple):
        return Link(value[0], value[1]) if is_api_link(value) else list(value)
    if isinstance(value, dict) and len(value) == 1 and "__value__" in value:
        inner = value["__value__"]
        return list(inner) if isinstance(inner, list | tuple) else inner
    return value


def parse_api(data: Any) -> Workflow:
    """Parse an API-format workflow; raises WorkflowError (naming the node) when the body is malformed."""
    if not isinstance(data, Mapping):
        raise WorkflowError(f"a workflow must be an object of nodes, got {type(data).__name__}")
    nodes: dict[str, WorkflowNode] = {}
    for raw_id, body in data.items():
        node_id = str(raw_id)
        if not isinstance(body, Mapping):
            raise WorkflowError(f"node {node_id}: expected an object, got {type(body).__name__}", node_id)
        class_type = body.get("class_type")
        if not isinstance(class_type, str) or not class_type:
            raise WorkflowError(f"node {node_id}: missing or invalid class_type", node_id, ErrorType.MISSING_NODE_TYPE)
        inputs = body.get("inputs", {})
        if inputs is None:
            inputs = {}
        if not isinstance(inputs, Mapping):
            raise WorkflowError(f"node {node_id}: inputs must be an object, got {type(inputs).__name__}", node_id)
        meta = body.get("_meta")
        title = meta.get("title") if isinstance(meta, Mapping) else None
        nodes[node_id] = WorkflowNode(
            id=node_id,
            class_type=class_type,
            inputs={str(k): decode_input(v) for k, v in inputs.items()},
            title=title if isinstance(title, str) and title else None,
        )
    return Workflow(nodes)
