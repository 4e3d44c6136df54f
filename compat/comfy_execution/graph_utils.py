"""`comfy_execution.graph_utils` for node packs: build the API-format graph a node returns to expand itself.

    graph = GraphBuilder()
    a = graph.node("ExampleAdd", x=1, y=2)
    b = graph.node("ExampleAdd", x=a.out(0), y=3)
    return {"result": (b.out(0),), "expand": graph.finalize()}

Node ids are local to the graph; the executor gives expanded nodes composite ids (`"<parent>:<id>"`), so a
builder's prefix is empty unless given or set with `GraphBuilder.set_default_prefix`. `set_override_display_id`
makes events name another node (`display_node`) while the expanded node runs.
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
        self.override_display_id: str | None = None

    def set_override_display_id(self, override_display_id: str) -> None:
        """Show this node as `override_display_id` in `executing`/`executed` (its `display_node`)."""
        self.override_display_id = override_display_id

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

    def serialize(self, include_id: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"class_type": self.class_type, "inputs": dict(self.inputs)}
        if self.override_display_id is not None:
            body["override_display_id"] = self.override_display_id
        if include_id:
            body["id"] = self.id
        return body


class GraphBuilder:
    _default_prefix_root = ""
    _default_prefix_call_index = 0
    _default_prefix_graph_index = 0
    _default_prefix_set = False

    def __init__(self, prefix: str | None = None) -> None:
        if prefix is None:
            prefix = GraphBuilder.alloc_prefix() if GraphBuilder._default_prefix_set else ""
        self.prefix = prefix
        self.nodes: dict[str, GraphNode] = {}
        self._counter = 0

    @classmethod
    def set_default_prefix(cls, prefix_root: str, call_index: int, graph_index: int = 0) -> None:
        """Make builders created without a prefix allocate `"<root>.<call>.<graph>."` prefixes from here on."""
        GraphBuilder._default_prefix_root = prefix_root
        GraphBuilder._default_prefix_call_index = call_index
        GraphBuilder._default_prefix_graph_index = graph_index
        GraphBuilder._default_prefix_set = True

    @classmethod
    def alloc_prefix(
        cls, root: str | None = None, call_index: int | None = None, graph_index: int | None = None
    ) -> str:
        """A fresh `"<root>.<call>.<graph>."` prefix; each call without `graph_index` takes the next graph index."""
        if root is None:
            root = GraphBuilder._default_prefix_root
        if call_index is None:
            call_index = GraphBuilder._default_prefix_call_index
        if graph_index is None:
            graph_index = GraphBuilder._default_prefix_graph_index
        GraphBuilder._default_prefix_graph_index = graph_index + 1
        return f"{root}.{call_index}.{graph_index}."

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

    def replace_node_output(self, node_id: str, index: int, new_value: Any) -> None:
        """Make every input linked to output `index` of node `node_id` take `new_value` instead (None unsets)."""
        target = [self.prefix + str(node_id), index]
        for node in self.nodes.values():
            for key, value in list(node.inputs.items()):
                if is_link(value) and value == target:
                    node.set_input(key, new_value)

    def finalize(self) -> dict[str, dict[str, Any]]:
        """The graph in the API format: `{id: {"class_type": ..., "inputs": {...}}}`."""
        return {node_id: node.serialize() for node_id, node in self.nodes.items()}


def add_graph_prefix(
    graph: dict[str, dict[str, Any]], outputs: Any, prefix: str
) -> tuple[dict[str, dict[str, Any]], tuple[Any, ...]]:
    """The graph with `prefix` before every node id (links included) and the outputs relinked to match."""

    def relink(value: Any) -> Any:
        return [prefix + value[0], value[1]] if is_link(value) else value

    new_graph = {
        prefix + node_id: {**body, "inputs": {k: relink(v) for k, v in (body.get("inputs") or {}).items()}}
        for node_id, body in graph.items()
    }
    return new_graph, tuple(relink(v) for v in outputs)


def __getattr__(name: str) -> Any:
    refuse("comfy_execution.graph_utils", name)
