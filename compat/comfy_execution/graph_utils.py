"""`comfy_execution.graph_utils` for node packs: build the API-format graph a node returns to expand itself.

    graph = GraphBuilder()
    a = graph.node("ExampleAdd", x=1, y=2)
    b = graph.node("ExampleAdd", x=a.out(0), y=3)
    return {"result": (b.out(0),), "expand": graph.finalize()}

Node ids are local to the graph; the executor gives expanded nodes composite ids (`"<parent>:<id>"`).
"""

from __future__ import annotations

from typing import Any

from compat.host import refuse


def is_link(value: Any) -> bool:
    """A link is exactly `[node id, output index]`."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


class GraphNode:
    def __init__(self, node_id: str, class_type: str, inputs: dict[str, Any]) -> None:
        self.id = node_id
        self.class_type = class_type
        self.inputs = {k: v for k, v in inputs.items() if v is not None}

    def out(self, index: int) -> list[Any]:
        """A link to this node's output `index`, to pass as another node's input."""
        return [self.id, index]

    def set_input(self, key: str, value: Any) -> None:
        if value is None:
            self.inputs.pop(key, None)
        else:
            self.inputs[key] = value

    def get_input(self, key: str) -> Any:
        return self.inputs.get(key)

    def serialize(self) -> dict[str, Any]:
        return {"class_type": self.class_type, "inputs": dict(self.inputs)}


class GraphBuilder:
    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or ""
        self.nodes: dict[str, GraphNode] = {}
        self._counter = 0

    def node(self, class_type: str, id: str | None = None, **inputs: Any) -> GraphNode:
        if id is None:
            id = self._fresh_id()
        node_id = self.prefix + str(id)
        if node_id in self.nodes:
            raise ValueError(f"GraphBuilder: node id {node_id!r} is already used")
        node = GraphNode(node_id, class_type, inputs)
        self.nodes[node_id] = node
        return node

    def _fresh_id(self) -> str:
        while True:
            self._counter += 1
            if self.prefix + str(self._counter) not in self.nodes:
                return str(self._counter)

    def lookup_node(self, id: str) -> GraphNode | None:
        return self.nodes.get(self.prefix + str(id))

    def remove_node(self, id: str) -> None:
        self.nodes.pop(self.prefix + str(id), None)

    def finalize(self) -> dict[str, dict[str, Any]]:
        """The graph in the API format: `{id: {"class_type": ..., "inputs": {...}}}`."""
        return {node_id: node.serialize() for node_id, node in self.nodes.items()}


def __getattr__(name: str) -> Any:
    refuse("comfy_execution.graph_utils", name)
