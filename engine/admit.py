"""Accepting a job: the one place a workflow is parsed, validated and converted. What is queued, stored and run is
the converted Workflow this returns, so a node gets the values validation made (an INT sent as "5" arrives as 5),
whether the job came from the HTTP API, the CLI or a Ray worker."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.registry import NodeRegistry
from engine.validate import ValidationResult, validate
from engine.workflow import Workflow, parse_api


class Rejected(ValueError):
    """No requested output is valid; `result.to_response()` is the protocol's 400 body."""

    def __init__(self, result: ValidationResult) -> None:
        super().__init__("; ".join(result.messages()) or (result.error or {}).get("message", "invalid workflow"))
        self.result = result


RESOLVED_MODELS = "loom_resolved_models"
"""The `extra_data` key under which an accepted job keeps the model names it resolved, reported when it runs."""


@dataclass(frozen=True, slots=True)
class ResolvedName:
    """A model-file input whose name was resolved to another file name before validation."""

    node_id: str
    input_name: str
    message: str  # "SDXL\\base.safetensors -> sdxl/base.safetensors (found by separators)"


@dataclass(frozen=True, slots=True)
class NameCheck:
    """What a NameResolver made of a prompt: the prompt with resolved names, what it resolved, and why some names
    stayed unresolved ((node id, input name) -> a sentence listing the candidates)."""

    prompt: Mapping[str, Any]
    resolved: tuple[ResolvedName, ...] = ()
    undecided: Mapping[tuple[str, str], str] = field(default_factory=dict)


NameResolver = Callable[[Mapping[str, Any], Mapping[str, Any]], NameCheck]
"""Resolves the model names of an API prompt (given the prompt and its extra_data): the host's model catalog."""


@dataclass(frozen=True, slots=True)
class Admission:
    """A workflow ready to run: converted in place, with the outputs that passed validation. `result.node_errors`
    still names the problems of the outputs that were dropped."""

    workflow: Workflow
    outputs: tuple[str, ...]
    result: ValidationResult
    resolved: tuple[ResolvedName, ...] = ()

    def node_errors(self) -> dict[str, Any]:
        errors: dict[str, Any] = self.result.to_response()["node_errors"]
        return errors


def admit(
    prompt: Workflow | Mapping[str, Any],
    registry: NodeRegistry,
    targets: Sequence[str] | None = None,
    extra_data: Mapping[str, Any] | None = None,
    names: NameResolver | None = None,
) -> Admission:
    """Resolve model names (with `names`, for a prompt given as a mapping), parse (unless given a Workflow),
    validate and convert. Raises WorkflowError for a body that is not a workflow, Rejected when no output is valid."""
    check = names(prompt, extra_data or {}) if names is not None and not isinstance(prompt, Workflow) else None
    if check is not None:
        prompt = check.prompt
    workflow = prompt if isinstance(prompt, Workflow) else parse_api(prompt)
    result = validate(workflow, registry, targets, extra_data)
    if check is not None and check.undecided:
        _explain_undecided(result, check.undecided)
    if not result.ok:
        raise Rejected(result)
    return Admission(workflow, result.outputs, result, check.resolved if check is not None else ())


def _explain_undecided(result: ValidationResult, undecided: Mapping[tuple[str, str], str]) -> None:
    """A model name that could be several files fails validation as not among the choices; say which files."""
    for node_id, errors in result.node_errors.items():
        for i, e in enumerate(errors.errors):
            why = undecided.get((node_id, e.input_name or ""))
            if e.type == "value_not_in_list" and why is not None:
                where = e.message.partition(f"input {e.input_name!r} ")[0]
                errors.errors[i] = replace(e, message=f"{where}input {e.input_name!r}: {why}", details=why)
