from __future__ import annotations

from typing import Any

import pytest

from engine.results import ResultError, normalise
from engine.spec import NodeResult, UiResult


def test_shapes(lab: Any) -> None:
    inc, sink, add = (lab.registry.get(n) for n in ("Inc", "Sink", "Add"))
    assert normalise(inc, 5, "1").outputs == (5,)
    assert normalise(inc, (5,), "1").outputs == (5,)
    assert normalise(inc, [[1, {}]], "1").outputs == ([[1, {}]],)  # a list value is one output
    assert normalise(inc, {"result": (4,), "ui": {"t": [1]}}, "1").ui == {"t": [1]}
    expanded = normalise(inc, {"result": (["a", 0],), "expand": {"a": {}}}, "1")
    assert expanded.expand == {"a": {}}
    assert normalise(sink, UiResult({"images": []}), "1").ui == {"images": []}
    assert normalise(sink, None, "1").outputs == ()
    assert normalise(add, NodeResult((3,)), "1").outputs == (3,)


def test_wrong_shapes_name_the_node(lab: Any) -> None:
    inc = lab.registry.get("Inc")
    with pytest.raises(ResultError, match=r"node 7 \(Inc\) returned 2 outputs; it declares 1"):
        normalise(inc, (1, 2), "7")
    with pytest.raises(ResultError, match="node 7"):
        normalise(inc, {"result": 5}, "7")
    with pytest.raises(ResultError, match="declares 1"):
        normalise(inc, {"ui": {}}, "7")
