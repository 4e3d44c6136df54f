"""Problems found in a workflow file before anything runs, reported all at once in the 400-body shape."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.workflow import WorkflowError

MISSING_NODE_TYPE = "missing_node_type"
MISSING_MODEL = "missing_model"
BAD_WORKFLOW = "invalid_prompt"
BAD_OVERRIDE = "bad_override"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a workflow file; `node_id` is None for problems of the file as a whole."""

    type: str
    message: str
    node_id: str | None = None
    class_type: str | None = None
    input_name: str | None = None
    value: Any = None

    def to_error(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.input_name is not None:
            extra["input_name"] = self.input_name
        if self.value is not None:
            extra["received_value"] = self.value
        return {"type": self.type, "message": self.message, "details": self.message, "extra_info": extra}

    def __str__(self) -> str:
        return self.message


def unknown_node_type(node_id: str, class_type: Any) -> Problem:
    """The problem of a node whose type no loaded node (or pack) provides."""
    return Problem(
        MISSING_NODE_TYPE,
        f"node {node_id}: unknown node type {class_type!r}",
        node_id=node_id,
        class_type=class_type if isinstance(class_type, str) else None,
        value=class_type,
    )


class WorkflowFileError(WorkflowError):
    """A workflow file that cannot be run or converted; carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        first = self.problems[0].node_id if self.problems else None
        super().__init__("; ".join(p.message for p in self.problems) or "invalid workflow", first)

    @property
    def missing_node_types(self) -> list[str]:
        return sorted({str(p.value) for p in self.problems if p.type == MISSING_NODE_TYPE})

    @property
    def missing_models(self) -> list[str]:
        return sorted({str(p.value) for p in self.problems if p.type == MISSING_MODEL})

    def to_response(self) -> dict[str, Any]:
        """The DESIGN.md 400 body: a summary error plus every problem filed under its node."""
        node_errors: dict[str, Any] = {}
        general = [p for p in self.problems if p.node_id is None]
        for p in self.problems:
            if p.node_id is None:
                continue
            entry = node_errors.setdefault(
                p.node_id, {"errors": [], "dependent_outputs": [], "class_type": p.class_type}
            )
            entry["errors"].append(p.to_error())
        extra: dict[str, Any] = {}
        if self.missing_node_types:
            extra["missing_node_types"] = self.missing_node_types
        if self.missing_models:
            extra["missing_models"] = self.missing_models
        head = general[0] if general else None
        return {
            "error": {
                "type": head.type if head else self.type,
                "message": head.message if head else "workflow has problems that stop it from running",
                "details": "; ".join(p.message for p in self.problems),
                "extra_info": extra,
            },
            "node_errors": node_errors,
        }
