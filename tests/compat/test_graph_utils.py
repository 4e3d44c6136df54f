"""`comfy_execution.graph_utils`: GraphBuilder produces the API-format graph a node expands into."""

from __future__ import annotations

import pytest

import compat


def test_builder_links_nodes_and_finalizes_to_the_api_format(host: compat.Host) -> None:
    from comfy_execution.graph_utils import GraphBuilder, is_link

    graph = GraphBuilder()
    first = graph.node("Add", x=1, y=2)
    second = graph.node("Add", x=first.out(0), y=None)
    second.set_input("y", 5)
    named = graph.node("Show", id="show", text=second.out(0))
    assert is_link(first.out(0)) and first.out(0) == [first.id, 0]
    assert first.id != second.id
    assert graph.finalize() == {
        first.id: {"class_type": "Add", "inputs": {"x": 1, "y": 2}},
        second.id: {"class_type": "Add", "inputs": {"x": [first.id, 0], "y": 5}},
        "show": {"class_type": "Show", "inputs": {"text": [second.id, 0]}},
    }
    assert graph.lookup_node("show") is named
    graph.remove_node("show")
    assert "show" not in graph.finalize()
    with pytest.raises(ValueError, match="already used"):
        graph.node("Add", id=first.id)


def test_prefix_and_id_allocation_skip_used_ids(host: compat.Host) -> None:
    from comfy_execution.graph_utils import GraphBuilder

    graph = GraphBuilder(prefix="loop.")
    graph.node("A", id="1")
    auto = graph.node("B")
    assert auto.id == "loop.2" and set(graph.finalize()) == {"loop.1", "loop.2"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(["3", 0], True), (["3", 1.0], False), ([3, 0], False), (("3", 0), False), (["3", True], False), ("3", False)],
)
def test_is_link(host: compat.Host, value: object, expected: bool) -> None:
    from comfy_execution.graph_utils import is_link

    assert is_link(value) is expected


def test_display_override_replace_output_and_graph_prefix(host: compat.Host) -> None:
    from comfy_execution.graph_utils import GraphBuilder, add_graph_prefix

    graph = GraphBuilder(prefix="p.")
    a = graph.node("Add", id="a", x=1)
    b = graph.node("Add", id="b", x=a.out(0), y=a.out(0))
    c = graph.node("Show", id="c", value=a.out(1))
    b.set_override_display_id("7")
    graph.replace_node_output("a", 0, 5)
    assert b.inputs == {"x": 5, "y": 5} and c.inputs == {"value": ["p.a", 1]}
    final = graph.finalize()
    assert final["p.b"] == {"class_type": "Add", "inputs": {"x": 5, "y": 5}, "override_display_id": "7"}
    assert b.serialize(include_id=True)["id"] == "p.b"
    prefixed, outputs = add_graph_prefix(final, (["p.c", 0], 3), "q:")
    assert set(prefixed) == {"q:p.a", "q:p.b", "q:p.c"}
    assert prefixed["q:p.c"]["inputs"] == {"value": ["q:p.a", 1]} and outputs == (["q:p.c", 0], 3)


def test_default_prefixes(host: compat.Host) -> None:
    from comfy_execution.graph_utils import GraphBuilder

    assert GraphBuilder().prefix == ""  # Loom namespaces expansions itself
    try:
        GraphBuilder.set_default_prefix("12", 3)
        assert GraphBuilder.alloc_prefix() == "12.3.0." and GraphBuilder().prefix == "12.3.1."
        assert GraphBuilder.alloc_prefix(root="x", call_index=0, graph_index=9) == "x.0.9."
    finally:  # back to no default prefix, for the tests after this one
        GraphBuilder.set_default_prefix("", 0)
        GraphBuilder._default_prefix_set = False
