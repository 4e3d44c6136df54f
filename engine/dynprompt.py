"""DYNPROMPT: the live view of a running prompt that node packs ask for as a hidden input.

It reads the run's node map as the executor grows it (expanded nodes included) and records, for each expanded
node, the node that expanded it (its parent) and the node clients should show it as (its display node).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.workflow import Link, Workflow, WorkflowNode, decode_input


class NodeNotFoundError(KeyError):
    """`get_node` was asked for an id that is in neither the prompt nor any expansion."""


class DynamicPrompt:
    def __init__(self, original: Workflow, nodes: dict[str, WorkflowNode]) -> None:
        self._original = original
        self._nodes = nodes
        self._parents: dict[str, str] = {}
        self._display: dict[str, str] = {}

    def get_node(self, node_id: str) -> dict[str, Any]:
        """`{"class_type", "inputs"}` with links as `[node id, output index]`; raises NodeNotFoundError."""
        node = self._nodes.get(node_id)
        if node is None:
            raise NodeNotFoundError(f"node {node_id} is not in the prompt")
        inputs = {k: [v.node, v.output] if type(v) is Link else v for k, v in node.inputs.items()}
        return {"class_type": node.class_type, "inputs": inputs}

    def has_node(self, node_id: str) -> bool:
        return node_id in self._nodes

    def all_node_ids(self) -> set[str]:
        return set(self._nodes)

    def get_original_prompt(self) -> dict[str, Any]:
        return self._original.to_api()

    def get_real_node_id(self, node_id: str) -> str:
        """The prompt node an expanded node descends from (the id itself for a prompt node)."""
        while node_id in self._parents:
            node_id = self._parents[node_id]
        return node_id

    def get_parent_node_id(self, node_id: str) -> str | None:
        return self._parents.get(node_id)

    def get_display_node_id(self, node_id: str) -> str:
        while node_id in self._display and self._display[node_id] != node_id:
            node_id = self._display[node_id]
        return node_id

    def add_ephemeral_node(self, node_id: str, node_info: Mapping[str, Any], parent_id: str, display_id: str) -> None:
        """Add a node the way an expansion does: `node_info` in the API format."""
        inputs = node_info.get("inputs") or {}
        self._nodes[node_id] = WorkflowNode(
            node_id, str(node_info["class_type"]), {str(k): decode_input(v) for k, v in inputs.items()}
        )
        self.link(node_id, parent_id, display_id)

    def link(self, node_id: str, parent_id: str, display_id: str) -> None:
        """Record an expanded node's parent and display node (the executor calls this for every expansion)."""
        self._parents[node_id] = parent_id
        self._display[node_id] = display_id
