"""The one vocabulary of workflow errors: the `type` of every error Loom reports about a workflow, whether it came
in through `POST /prompt`, a workflow file (`main.py run|validate|convert`) or the canvas.

The same mistake gets the same type on every path, with the ecosystem's names: an unknown node type (or a node
without one) is `missing_node_type`, a model file that is not here `value_not_in_list`, as ComfyUI answers them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ErrorType(StrEnum):
    # the request or file as a whole
    INVALID_PROMPT = "invalid_prompt"  # not a workflow at all (not JSON, not an object of nodes, malformed links)
    MISSING_NODE_TYPE = "missing_node_type"  # a node type no loaded node or pack provides, or no class_type
    NO_OUTPUTS = "prompt_no_outputs"  # nothing to run: no output node (among those asked for)
    OUTPUTS_FAILED_VALIDATION = "prompt_outputs_failed_validation"  # every output has a problem upstream
    BAD_OVERRIDE = "bad_override"  # a `--set` or `--model-map` argument that names nothing (CLI only)
    # one node's inputs
    REQUIRED_INPUT_MISSING = "required_input_missing"
    BAD_LINKED_INPUT = "bad_linked_input"
    RETURN_TYPE_MISMATCH = "return_type_mismatch"
    INVALID_INPUT_TYPE = "invalid_input_type"
    VALUE_SMALLER_THAN_MIN = "value_smaller_than_min"
    VALUE_BIGGER_THAN_MAX = "value_bigger_than_max"
    VALUE_NOT_IN_LIST = "value_not_in_list"  # also a model file that is not in its folder
    CUSTOM_VALIDATION_FAILED = "custom_validation_failed"
    EXCEPTION_DURING_VALIDATION = "exception_during_validation"
    DEPENDENCY_CYCLE = "dependency_cycle"


@dataclass(frozen=True, slots=True)
class UnknownNode:
    """A node whose type is not known here (class_type None: it has none)."""

    node_id: str
    class_type: str | None
    title: str | None = None


def missing_node_type_error(unknown: Sequence[UnknownNode]) -> dict[str, Any]:
    """The request-level `missing_node_type` error, from /prompt and for files alike: the first unknown node in
    the ecosystem's message and `extra_info` fields, and every unknown type in `missing_node_types`."""
    first = unknown[0]
    names = ", ".join(f"{n.class_type} (node {n.node_id})" for n in unknown)
    return {
        "type": ErrorType.MISSING_NODE_TYPE,
        "message": f"Node '{first.title or first.class_type or first.node_id}' not found. "
        "The custom node may not be installed.",
        "details": f"Cannot execute because a node type is unknown: {names}",
        "extra_info": {
            "node_id": first.node_id,
            "class_type": first.class_type,
            "node_title": first.title,
            "missing_node_types": sorted({n.class_type for n in unknown if n.class_type}),
        },
    }
