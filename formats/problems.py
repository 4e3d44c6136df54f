"""Problems found in a workflow file before anything runs, reported all at once in the 400-body shape that
`POST /prompt` answers, with the same error types (engine.errors)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.errors import ErrorType, UnknownNode, missing_node_type_error
from engine.workflow import WorkflowError


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a workflow file; `node_id` is None for problems of the file as a whole.
    `model_file`: the input names a model file that is not here (a `value_not_in_list`, as /prompt says)."""

    type: ErrorType
    message: str
    node_id: str | None = None
    class_type: str | None = None
    input_name: str | None = None
    value: Any = None
    model_file: bool = False

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
    """The problem of a node whose type no loaded node (or pack) provides, or that has none."""
    return Problem(
        ErrorType.MISSING_NODE_TYPE,
        f"node {node_id}: unknown node type {class_type!r}" if class_type else f"node {node_id}: no class_type",
        node_id=node_id,
        class_type=class_type if isinstance(class_type, str) else None,
        value=class_type,
    )


class WorkflowFileError(WorkflowError):
    """A workflow file that cannot be run or converted; carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        first = self.problems[0].node_id if self.problems else None
        super().__init__("; ".join(p.message for p in self.problems) or "invalid workflow", first, self._summary_type())

    def _summary_type(self) -> ErrorType:
        """The request-level type /prompt would answer for these problems."""
        general = [p for p in self.problems if p.node_id is None]
        if general:
            return general[0].type
        if any(p.type == ErrorType.MISSING_NODE_TYPE for p in self.problems):
            return ErrorType.MISSING_NODE_TYPE
        return ErrorType.OUTPUTS_FAILED_VALIDATION

    @property
    def missing_node_types(self) -> list[str]:
        return sorted({str(p.value) for p in self.problems if p.type == ErrorType.MISSING_NODE_TYPE})

    @property
    def missing_models(self) -> list[str]:
        return sorted({str(p.value) for p in self.problems if p.model_file})

    def to_response(self) -> dict[str, Any]:
        """The 400 body `POST /prompt` answers for the same problems: a summary error, every problem under its node."""
        node_errors: dict[str, Any] = {}
        general = [p for p in self.problems if p.node_id is None]
        for p in self.problems:
            if p.node_id is None:
                continue
            entry = node_errors.setdefault(
                p.node_id, {"errors": [], "dependent_outputs": [], "class_type": p.class_type}
            )
            entry["errors"].append(p.to_error())
        details = "; ".join(p.message for p in self.problems)
        error: dict[str, Any]
        if general:
            error = {"type": general[0].type, "message": general[0].message, "details": details, "extra_info": {}}
        elif self.type == ErrorType.MISSING_NODE_TYPE:
            unknown = [UnknownNode(p.node_id or "", p.class_type) for p in self.problems if p.type == self.type]
            error = missing_node_type_error(unknown) | {"details": details}
        else:
            error = {
                "type": self.type,
                "message": "Prompt outputs failed validation",
                "details": details,
                "extra_info": {},
            }
        if self.missing_models:
            error["extra_info"]["missing_models"] = self.missing_models
        return {"error": error, "node_errors": node_errors}
