"""Accepting a job: the one place a workflow is parsed, validated and converted. What is queued, stored and run is
the converted Workflow this returns, so a node gets the values validation made (an INT sent as "5" arrives as 5),
whether the job came from the HTTP API, the CLI or a Ray worker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.registry import NodeRegistry
from engine.validate import ValidationResult, validate
from engine.workflow import Workflow, parse_api


class Rejected(ValueError):
    """No requested output is valid; `result.to_response()` is the protocol's 400 body."""

    def __init__(self, result: ValidationResult) -> None:
        super().__init__("; ".join(result.messages()) or (result.error or {}).get("message", "invalid workflow"))
        self.result = result


@dataclass(frozen=True, slots=True)
class Admission:
    """A workflow ready to run: converted in place, with the outputs that passed validation. `result.node_errors`
    still names the problems of the outputs that were dropped."""

    workflow: Workflow
    outputs: tuple[str, ...]
    result: ValidationResult

    def node_errors(self) -> dict[str, Any]:
        errors: dict[str, Any] = self.result.to_response()["node_errors"]
        return errors


def admit(
    prompt: Workflow | Mapping[str, Any],
    registry: NodeRegistry,
    targets: Sequence[str] | None = None,
    extra_data: Mapping[str, Any] | None = None,
) -> Admission:
    """Parse (unless given a Workflow), validate and convert. Raises WorkflowError for a body that is not a
    workflow, Rejected when no output is valid."""
    workflow = prompt if isinstance(prompt, Workflow) else parse_api(prompt)
    result = validate(workflow, registry, targets, extra_data)
    if not result.ok:
        raise Rejected(result)
    return Admission(workflow, result.outputs, result)
