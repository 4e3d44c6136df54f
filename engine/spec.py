"""NodeSpec: the one internal description of a node, whichever API it was written with."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.types import BOOLEAN, COMBO, FLOAT, INT, STRING, WIDGET_TYPES

InputKind = Literal["required", "optional", "hidden"]

# Hidden inputs the executor fills in, by the protocol's names.
HIDDEN_UNIQUE_ID = "UNIQUE_ID"
HIDDEN_PROMPT = "PROMPT"
HIDDEN_EXTRA_PNGINFO = "EXTRA_PNGINFO"
HIDDEN_DYNPROMPT = "DYNPROMPT"


class SpecError(ValueError):
    """A node declaration that cannot work; raised when the node is defined or registered."""


@dataclass(frozen=True, slots=True)
class InputSpec:
    name: str
    type: str
    kind: InputKind = "required"
    default: Any = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    multiline: bool = False
    tooltip: str | None = None
    lazy: bool = False
    force_input: bool = False
    control_after_generate: bool = False
    hidden: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    # False for a combo's implicit default (its first choice): clients pick that themselves, the schema omits it.
    publish_default: bool = True

    @property
    def is_widget(self) -> bool:
        """A widget takes a literal value on the canvas; anything else must be linked."""
        return self.kind != "hidden" and self.type in WIDGET_TYPES and not self.force_input

    @property
    def has_default(self) -> bool:
        return self.default is not None

    def schema(self) -> list[Any]:
        """This input in the `/object_info` protocol shape: `[TYPE]` or `[TYPE, options]`."""
        if self.kind == "hidden":
            return self.hidden or self.type  # type: ignore[return-value]
        opts: dict[str, Any] = dict(self.options)
        for key, value in (
            ("default", self.default if self.publish_default else None),
            ("min", self.min),
            ("max", self.max),
            ("step", self.step),
            ("tooltip", self.tooltip),
        ):
            if value is not None:
                opts[key] = value
        if self.multiline:
            opts["multiline"] = True
        if self.lazy:
            opts["lazy"] = True
        if self.force_input:
            opts["forceInput"] = True
        if self.control_after_generate:
            opts["control_after_generate"] = True
        head: Any = list(self.choices) if self.type == COMBO and self.choices is not None else self.type
        return [head, opts] if opts else [head]


@dataclass(frozen=True, slots=True)
class OutputSpec:
    type: str
    name: str
    is_list: bool = False
    tooltip: str | None = None


@dataclass(frozen=True, slots=True)
class UiResult:
    """What a node returns for display (saved images, text) next to, or instead of, its outputs."""

    ui: Mapping[str, Any]


@dataclass(slots=True)
class NodeResult:
    """A node's call normalised: its outputs, its display output, and an optional expansion graph."""

    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None = None
    expand: dict[str, Any] | None = None


Invoke = Callable[[dict[str, Any]], "Any | Awaitable[Any]"]


@dataclass(slots=True)
class NodeSpec:
    """Everything the engine needs to know about a node type.

    `invoke` takes the keyword inputs (plus `__context__` when `wants_context`) and returns the raw result in
    either API's shape; `engine.results.normalise` turns that into a NodeResult. `input_refresh` re-reads inputs
    whose choices change at run time (model files in a folder); `inputs` is the snapshot from registration.
    A `lenient` spec (a pack's) keeps a default that does not fit its input, as the reference does, and records
    why in `warnings`; a strict one (Loom's own) refuses it.
    """

    class_type: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    invoke: Invoke
    display_name: str = ""
    description: str = ""
    category: str = ""
    output_node: bool = False
    version: str = "1"
    input_is_list: bool = False
    not_idempotent: bool = False
    is_async: bool = False
    wants_context: bool = False
    fingerprint: Callable[[dict[str, Any]], Any] | None = None
    validate: Callable[[dict[str, Any]], Any] | None = None
    validate_wants_types: bool = False
    validate_inputs: frozenset[str] | None = None
    check_lazy: Callable[[dict[str, Any]], Sequence[str] | None] | None = None
    input_refresh: Callable[[], tuple[InputSpec, ...]] | None = None
    python_module: str = "nodes"
    pack: str | None = None
    deprecated: bool = False
    experimental: bool = False
    lenient: bool = False
    warnings: list[str] = field(default_factory=list)
    _by_name: dict[str, InputSpec] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.display_name:
            self.display_name = self.class_type
        check_spec(self)
        self._by_name = {i.name: i for i in self.inputs}

    def input(self, name: str) -> InputSpec | None:
        return self._by_name.get(name)

    def current_inputs(self) -> tuple[InputSpec, ...]:
        """Inputs with up-to-date choices: call once per validation or schema request, not per node run."""
        return self.input_refresh() if self.input_refresh is not None else self.inputs

    @property
    def has_lazy_inputs(self) -> bool:
        return any(i.lazy for i in self.inputs)

    def schema(self) -> dict[str, Any]:
        """The node in the `/object_info` protocol shape."""
        inputs = self.current_inputs()
        groups: dict[str, dict[str, Any]] = {"required": {}, "optional": {}, "hidden": {}}
        order: dict[str, list[str]] = {"required": [], "optional": []}
        for inp in inputs:
            groups[inp.kind][inp.name] = inp.schema()
            if inp.kind != "hidden":
                order[inp.kind].append(inp.name)
        info: dict[str, Any] = {
            "input": {k: v for k, v in groups.items() if v or k == "required"},
            "input_order": {k: v for k, v in order.items() if v or k == "required"},
            "output": [o.type for o in self.outputs],
            "output_is_list": [o.is_list for o in self.outputs],
            "output_name": [o.name for o in self.outputs],
            "output_tooltips": [o.tooltip for o in self.outputs],
            "name": self.class_type,
            "display_name": self.display_name,
            "description": self.description,
            "python_module": self.python_module,
            "category": self.category,
            "output_node": self.output_node,
        }
        if self.deprecated:
            info["deprecated"] = True
        if self.experimental:
            info["experimental"] = True
        return info


def check_spec(spec: NodeSpec) -> None:
    """Refuse declarations that could never validate or run, naming the node and the input. A default that does
    not fit its input is refused too, unless the spec is lenient: then it is kept and a warning recorded."""
    where = f"node {spec.class_type!r}"
    if not spec.class_type or not isinstance(spec.class_type, str):
        raise SpecError("a node needs a non-empty class_type string")
    seen: set[str] = set()
    for inp in spec.inputs:
        if inp.name in seen:
            raise SpecError(f"{where}: input {inp.name!r} is declared twice")
        seen.add(inp.name)
        check_input(where, inp)
        problem = default_problem(inp)
        if problem is not None:
            message = f"{where}, input {inp.name!r}: {problem}"
            if not spec.lenient:
                raise SpecError(message)
            spec.warnings.append(message + " (kept)")
    for out in spec.outputs:
        if not out.type:
            raise SpecError(f"{where}: output {out.name!r} has no type")


def check_input(where: str, inp: InputSpec) -> None:
    where = f"{where}, input {inp.name!r}"
    if not inp.type:
        raise SpecError(f"{where}: no socket type")


def default_problem(inp: InputSpec) -> str | None:
    """Why an input's default or range cannot be satisfied by a widget, or None when it fits."""
    if inp.kind == "hidden":
        return None
    if inp.min is not None and inp.max is not None and _number(inp.min) and _number(inp.max) and inp.min > inp.max:
        return f"min {inp.min} is greater than max {inp.max}"
    if inp.default is None:
        return None
    default = inp.default
    if inp.type in (INT, FLOAT):
        if not _number(default):
            return f"default {default!r} is not a number"
        if inp.type == INT and isinstance(default, float) and not default.is_integer():
            return f"default {default!r} is not an integer"
        low = inp.min if _number(inp.min) else None
        high = inp.max if _number(inp.max) else None
        if not math.isnan(default) and ((low is not None and default < low) or (high is not None and default > high)):
            return f"default {default} lies outside [{inp.min}, {inp.max}]"
    elif inp.type == STRING and not isinstance(default, str):
        return f"default {default!r} is not a string"
    elif inp.type == BOOLEAN and not isinstance(default, bool):
        return f"default {default!r} is not a boolean"
    elif inp.type == COMBO and inp.choices and default not in inp.choices:
        return f"default {default!r} is not among the choices"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
