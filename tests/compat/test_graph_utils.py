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
