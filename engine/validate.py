"""Whole-workflow validation: every problem at once, per node and input, in the protocol's error shapes.

Literal values are checked against the node's current inputs and, like the ecosystem does, coerced in place
(`"5"` for an INT becomes 5), so the executor and the signatures see the values that will be used.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ErrorType, UnknownNode, missing_node_type_error
from engine.hidden import ABSENT, HiddenValues
from engine.plan import find_cycles, link_sources
from engine.registry import NodeRegistry
from engine.spec import InputSpec, NodeSpec
from engine.types import BOOLEAN, COMBO, FLOAT, INT, STRING, types_compatible
from engine.workflow import Link, Workflow, WorkflowNode

_NO_VALUE = object()


@dataclass(slots=True)
class InputError:
    type: ErrorType
    message: str
    details: str = ""
    input_name: str | None = None
    input_config: Any = None
    received_value: Any = _NO_VALUE

    def to_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.input_name is not None:
            extra["input_name"] = self.input_name
        if self.input_config is not None:
            extra["input_config"] = self.input_config
        if self.received_value is not _NO_VALUE:
            extra["received_value"] = self.received_value
        return {"type": self.type, "message": self.message, "details": self.details, "extra_info": extra}


@dataclass(slots=True)
class NodeErrors:
    class_type: str
    errors: list[InputError] = field(default_factory=list)
    dependent_outputs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "errors": [e.to_dict() for e in self.errors],
            "dependent_outputs": list(self.dependent_outputs),
            "class_type": self.class_type,
        }


@dataclass(slots=True)
class ValidationResult:
    ok: bool
    outputs: tuple[str, ...]
    node_errors: dict[str, NodeErrors]
    error: dict[str, Any] | None = None

    def to_response(self) -> dict[str, Any]:
        """The DESIGN.md 400 body."""
        error = self.error or {"type": "", "message": "", "details": "", "extra_info": {}}
        return {"error": error, "node_errors": {k: v.to_dict() for k, v in self.node_errors.items()}}

    def messages(self) -> list[str]:
        """One line per problem, for terminals."""
        return [e.message for errs in self.node_errors.values() for e in errs.errors]


@dataclass(slots=True)
class _ClassInputs:
    inputs: tuple[InputSpec, ...]
    error: InputError | None = None


def validate(
    workflow: Workflow,
    registry: NodeRegistry,
    targets: Sequence[str] | None = None,
    extra_data: Mapping[str, Any] | None = None,
) -> ValidationResult:
    """Check what each requested output (all output nodes, or those among `targets`) needs, output by output.

    An output is valid when nothing it depends on has a problem; `outputs` lists the valid ones (they run), and
    `node_errors` the problems that made the others invalid. `ok` when at least one output is valid.
    """
    nodes = workflow.nodes
    specs: dict[str, NodeSpec] = {}
    node_errors: dict[str, NodeErrors] = {}
    unknown: list[WorkflowNode] = []
    for node in nodes.values():
        spec = specs.get(node.class_type) or registry.get(node.class_type)
        if spec is None:
            unknown.append(node)
            node_errors[node.id] = NodeErrors(
                node.class_type,
                [InputError(ErrorType.MISSING_NODE_TYPE, f"node {node.label}: unknown node type {node.class_type!r}")],
            )
        else:
            specs[node.class_type] = spec
    wanted = None if targets is None else set(targets)
    requested = tuple(
        n.id
        for n in nodes.values()
        if n.class_type in specs and specs[n.class_type].output_node and (wanted is None or n.id in wanted)
    )
    valid: tuple[str, ...] = ()
    if requested and not unknown:
        hidden = HiddenValues(workflow, extra_data or {})
        needed = _closure(workflow, requested)
        current: dict[str, _ClassInputs] = {}
        for node_id in needed:
            node = nodes[node_id]
            spec = specs[node.class_type]
            cls = current.get(node.class_type)
            if cls is None:
                cls = current[node.class_type] = _current_inputs(spec)
            errors = [cls.error] if cls.error else _check_node(node, spec, cls.inputs, nodes, specs, hidden)
            if errors:
                node_errors.setdefault(node_id, NodeErrors(node.class_type)).errors.extend(errors)
        for cycle in find_cycles(needed, link_sources(workflow)):
            path = " -> ".join(nodes[n].label for n in [*cycle, cycle[0]])
            for node_id in cycle:
                message = f"node {nodes[node_id].label} is part of a dependency cycle: {path}"
                node_errors.setdefault(node_id, NodeErrors(nodes[node_id].class_type)).errors.append(
                    InputError(ErrorType.DEPENDENCY_CYCLE, message, path)
                )
        valid = _mark_dependents(workflow, requested, node_errors) if node_errors else requested

    error: dict[str, Any] | None = None
    if unknown:
        error = missing_node_type_error([UnknownNode(n.id, n.class_type, n.title) for n in unknown])
    elif not requested:
        error = _error(ErrorType.NO_OUTPUTS, "Prompt has no outputs", "the workflow has no output node to run")
    elif not valid:
        details = "; ".join(f"{m}" for m in (e.message for ne in node_errors.values() for e in ne.errors))
        error = _error(ErrorType.OUTPUTS_FAILED_VALIDATION, "Prompt outputs failed validation", details)
    return ValidationResult(error is None, valid, node_errors, error)


def _error(kind: ErrorType, message: str, details: str, **extra_info: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra_info}


def _closure(workflow: Workflow, roots: Sequence[str]) -> list[str]:
    """The roots and every node they link to, directly or not (lazy links included: they may be asked for)."""
    nodes = workflow.nodes
    seen = dict.fromkeys(roots)
    stack = list(roots)
    while stack:
        for value in nodes[stack.pop()].inputs.values():
            if type(value) is Link and value.node in nodes and value.node not in seen:
                seen[value.node] = None
                stack.append(value.node)
    return list(seen)


def _current_inputs(spec: NodeSpec) -> _ClassInputs:
    try:
        return _ClassInputs(spec.current_inputs())
    except Exception as exc:
        message = f"reading the inputs of {spec.class_type} failed: {type(exc).__name__}: {exc}"
        return _ClassInputs((), InputError(ErrorType.EXCEPTION_DURING_VALIDATION, message, traceback.format_exc()))


def _check_node(
    node: WorkflowNode,
    spec: NodeSpec,
    inputs: tuple[InputSpec, ...],
    nodes: Mapping[str, WorkflowNode],
    specs: Mapping[str, NodeSpec],
    hidden: HiddenValues,
) -> list[InputError]:
    """The node's problems. Literals are converted in place. Inputs that VALIDATE_INPUTS names (all of them when it
    takes **kwargs) skip the range and choice checks; link types are not checked when it takes `input_types`."""
    errors: list[InputError] = []
    takes_all = spec.validate is not None and spec.validate_inputs is None
    named = spec.validate_inputs or frozenset()
    wants_types = spec.validate_wants_types
    linked_types: dict[str, str] = {}
    values = node.inputs
    where = f"node {node.label} ({node.class_type})"
    for inp in inputs:
        if inp.kind == "hidden":
            continue
        name = inp.name
        value = values.get(name, _NO_VALUE)
        if value is _NO_VALUE:
            if inp.kind == "required":
                errors.append(
                    InputError(
                        ErrorType.REQUIRED_INPUT_MISSING,
                        f"{where}: required input {name!r} is missing",
                        name,
                        name,
                        inp.schema(),
                    )
                )
            continue
        if type(value) is Link:
            problem = _check_link(where, name, inp, value, nodes, specs, linked_types)
            if problem is None and not wants_types:
                out_type = linked_types[name]
                if not types_compatible(out_type, inp.type):
                    problem = InputError(
                        ErrorType.RETURN_TYPE_MISMATCH,
                        f"{where}: input {name!r} expects {inp.type} but node {value.node} output {value.output} "
                        f"gives {out_type}",
                        f"{name}, received_type({out_type}) mismatch input_type({inp.type})",
                        name,
                        inp.schema(),
                    )
            if problem is not None:
                errors.append(problem)
            continue
        coerced, problem = _check_literal(where, inp, value, limits=not (takes_all or name in named))
        if problem is not None:
            errors.append(problem)
        elif coerced is not value:
            values[name] = coerced
    if not errors and spec.validate is not None:
        problem = _custom_validation(where, spec, node, inputs, linked_types, hidden)
        if problem is not None:
            errors.append(problem)
    return errors


def _check_link(
    where: str,
    name: str,
    inp: InputSpec,
    link: Link,
    nodes: Mapping[str, WorkflowNode],
    specs: Mapping[str, NodeSpec],
    linked_types: dict[str, str],
) -> InputError | None:
    source = nodes.get(link.node)
    problem = None
    if source is None:
        problem = f"links to node {link.node}, which is not in the workflow"
    elif source.class_type not in specs:
        problem = f"links to node {source.label}, whose type {source.class_type!r} is unknown"
    else:
        outputs = specs[source.class_type].outputs
        if not 0 <= link.output < len(outputs):
            problem = f"links to output {link.output} of node {source.label}, which has {len(outputs)} outputs"
        else:
            linked_types[name] = outputs[link.output].type
            return None
    return InputError(
        ErrorType.BAD_LINKED_INPUT,
        f"{where}: input {name!r} {problem}",
        f"{name}: {problem}",
        name,
        inp.schema(),
        list(link),
    )


def _check_literal(where: str, inp: InputSpec, value: Any, limits: bool) -> tuple[Any, InputError | None]:
    """The value as the node will get it, or the problem with it; `limits`: check min, max and choices too."""
    kind = inp.type
    name = inp.name

    def fail(error_type: ErrorType, message: str) -> tuple[Any, InputError]:
        return value, InputError(
            error_type, f"{where}: input {name!r} {message}", f"{name}: {message}", name, inp.schema(), value
        )

    if kind in (INT, FLOAT):
        number = _as_number(value, kind == INT)
        if number is None:
            return fail(ErrorType.INVALID_INPUT_TYPE, f"expects {kind} but got {value!r}")
        if limits and not (isinstance(number, float) and math.isnan(number)):
            if inp.min is not None and number < inp.min:
                return fail(ErrorType.VALUE_SMALLER_THAN_MIN, f"value {number} is smaller than the minimum {inp.min}")
            if inp.max is not None and number > inp.max:
                return fail(ErrorType.VALUE_BIGGER_THAN_MAX, f"value {number} is bigger than the maximum {inp.max}")
        return (value if number == value and type(number) is type(value) else number), None
    if kind == STRING:
        if isinstance(value, str):
            return value, None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value), None
        return fail(ErrorType.INVALID_INPUT_TYPE, f"expects a STRING but got {value!r}")
    if kind == BOOLEAN:
        if isinstance(value, bool):
            return value, None
        if value in (0, 1) and isinstance(value, int):
            return bool(value), None
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true", None
        return fail(ErrorType.INVALID_INPUT_TYPE, f"expects a BOOLEAN but got {value!r}")
    if kind == COMBO and limits:
        choices = inp.choices or ()
        try:
            present = value in choices
        except TypeError:
            present = False
        if not present:
            shown = ", ".join(repr(c) for c in choices[:20]) + (", ..." if len(choices) > 20 else "")
            return fail(ErrorType.VALUE_NOT_IN_LIST, f"value {value!r} is not among the choices [{shown}]")
    return value, None


def _as_number(value: Any, integer: bool) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return None
    if isinstance(value, int):
        return value if integer else float(value)
    if isinstance(value, float):
        if integer:
            return int(value) if math.isfinite(value) else None
        return value
    return None


def _custom_validation(
    where: str,
    spec: NodeSpec,
    node: WorkflowNode,
    inputs: tuple[InputSpec, ...],
    linked_types: dict[str, str],
    hidden: HiddenValues,
) -> InputError | None:
    """Call VALIDATE_INPUTS with the literal inputs (converted), linked inputs as None, the hidden values it asks
    for and, when it takes `input_types`, the types its linked inputs receive; a coroutine is awaited."""
    takes = spec.validate_inputs
    given = node.inputs
    args: dict[str, Any] = {}
    for inp in inputs:
        if takes is not None and inp.name not in takes:
            continue
        if inp.kind == "hidden":
            value = hidden.value(node.id, inp.name, inp.hidden or inp.type, given)
            if value is not ABSENT:
                args[inp.name] = value
        elif inp.name in given:
            value = given[inp.name]
            args[inp.name] = None if type(value) is Link else value
    if spec.validate_wants_types:
        args["input_types"] = dict(linked_types)
    try:
        verdict = spec.validate(args)  # type: ignore[misc]
        if inspect.isawaitable(verdict):
            verdict = asyncio.run(_awaited(verdict))
    except Exception as exc:
        return InputError(
            ErrorType.EXCEPTION_DURING_VALIDATION,
            f"{where}: validating the inputs raised {type(exc).__name__}: {exc}",
            traceback.format_exc(),
        )
    if verdict is True:
        return None
    checked = [i for i in inputs if i.kind != "hidden" and (takes is None or i.name in takes)]
    first = checked[0] if checked else None
    return InputError(
        ErrorType.CUSTOM_VALIDATION_FAILED,
        f"{where}: {verdict}",
        f"{first.name} - {verdict}" if first else str(verdict),
        first.name if first else None,
        first.schema() if first else None,
        given.get(first.name, _NO_VALUE) if first else _NO_VALUE,
    )


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _mark_dependents(workflow: Workflow, outputs: Sequence[str], node_errors: dict[str, NodeErrors]) -> tuple[str, ...]:
    """List, for each invalid node, the requested outputs that depend on it; returns the outputs that depend on no
    invalid node."""
    valid = []
    for output in outputs:
        broken = False
        for node_id in _closure(workflow, [output]):
            errs = node_errors.get(node_id)
            if errs is not None:
                errs.dependent_outputs.append(output)
                broken = True
        if not broken:
            valid.append(output)
    return tuple(valid)
