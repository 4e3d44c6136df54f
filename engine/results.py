"""Normalises what a node function returned, in either API's shape, into a NodeResult."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.spec import NodeResult, NodeSpec, UiResult


class ResultError(TypeError):
    """A node returned something of the wrong shape; the message names the node."""


def normalise(spec: NodeSpec, raw: Any, node_id: str) -> NodeResult:
    """Accepts a tuple of outputs, a single value when the node has one output, a dict with `result`/`ui`/`expand`,
    a UiResult, or a NodeResult; checks the number of outputs (an expansion's result is checked by the caller)."""
    expected = len(spec.outputs)
    where = f"node {node_id} ({spec.class_type})"
    if type(raw) is tuple:
        result = NodeResult(raw)
    elif isinstance(raw, NodeResult):
        result = raw
    elif isinstance(raw, UiResult):
        result = NodeResult((), dict(raw.ui))
    elif isinstance(raw, Mapping) and raw.keys() <= {"result", "ui", "expand"} and raw:
        result = _from_dict(where, raw)
    elif raw is None and expected == 0:
        result = NodeResult(())
    elif expected == 1:
        result = NodeResult((raw,))
    elif isinstance(raw, list | tuple):
        result = NodeResult(tuple(raw))
    else:
        raise ResultError(f"{where} returned {_kind(raw)}; expected a tuple of {expected} outputs")
    if result.ui is not None and not isinstance(result.ui, dict):
        if not isinstance(result.ui, Mapping):
            raise ResultError(f"{where} returned a ui of type {type(result.ui).__name__}; expected a dict")
        result.ui = dict(result.ui)
    if result.expand is None and len(result.outputs) != expected:
        if spec.output_node and not result.outputs:  # a display-only return from an output node
            result.outputs = (None,) * expected
            return result
        raise ResultError(f"{where} returned {len(result.outputs)} outputs; it declares {expected}")
    return result


def _from_dict(where: str, raw: Mapping[str, Any]) -> NodeResult:
    outputs = raw.get("result", ())
    if outputs is None:
        outputs = ()
    if not isinstance(outputs, tuple | list):
        raise ResultError(f"{where} returned a 'result' of type {type(outputs).__name__}; expected a tuple")
    expand = raw.get("expand")
    if expand is not None and not isinstance(expand, Mapping):
        raise ResultError(f"{where} returned an 'expand' of type {type(expand).__name__}; expected a workflow dict")
    ui = raw.get("ui")
    return NodeResult(tuple(outputs), ui, dict(expand) if expand is not None else None)


def _kind(value: Any) -> str:
    return "None" if value is None else f"a {type(value).__name__}"


class ItemList(tuple[Any, ...]):
    """An output holding one item per call: a list output (OUTPUT_IS_LIST) or the outputs of a node that ran once
    per item of a list input. Downstream nodes run once per item unless they take whole lists (INPUT_IS_LIST)."""

    __slots__ = ()
