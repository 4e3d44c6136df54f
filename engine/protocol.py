"""Turns protocol-style node classes (INPUT_TYPES, RETURN_TYPES, FUNCTION, ...) into NodeSpecs."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from engine.spec import InputKind, InputSpec, NodeSpec, OutputSpec, SpecError
from engine.types import COMBO, FLOAT, INT

_KNOWN_OPTIONS = {
    "default",
    "min",
    "max",
    "step",
    "tooltip",
    "multiline",
    "lazy",
    "forceInput",
    "control_after_generate",
    "options",
}


def spec_from_class(
    class_type: str,
    cls: type,
    display_name: str | None = None,
    python_module: str = "custom_nodes",
    pack: str | None = None,
) -> NodeSpec:
    """Read a protocol class; raises SpecError naming the class and what is wrong with it."""
    where = f"node {class_type!r}"
    if not inspect.isclass(cls):
        raise SpecError(f"{where}: expected a class, got {type(cls).__name__}")
    input_types = getattr(cls, "INPUT_TYPES", None)
    if not callable(input_types):
        raise SpecError(f"{where}: has no INPUT_TYPES classmethod")
    function_name = getattr(cls, "FUNCTION", None)
    if not isinstance(function_name, str) or not callable(getattr(cls, function_name, None)):
        raise SpecError(f"{where}: FUNCTION must name a method of the class, got {function_name!r}")

    def read_inputs() -> tuple[InputSpec, ...]:
        try:
            declared = input_types()
        except Exception as exc:
            raise SpecError(f"{where}: INPUT_TYPES() raised {type(exc).__name__}: {exc}") from exc
        return parse_input_types(where, declared)

    inputs = read_inputs()
    outputs = parse_outputs(where, cls)
    function = getattr(cls, function_name)
    is_changed = getattr(cls, "IS_CHANGED", None)
    validate = getattr(cls, "VALIDATE_INPUTS", None)
    validate_params = _param_names(validate) if callable(validate) else None
    has_lazy = callable(getattr(cls, "check_lazy_status", None))

    def invoke(kwargs: dict[str, Any]) -> Any:
        kwargs.pop("__context__", None)
        return getattr(cls(), function_name)(**kwargs)

    def check_lazy(kwargs: dict[str, Any]) -> Any:
        return cls().check_lazy_status(**kwargs)

    return NodeSpec(
        class_type=class_type,
        inputs=inputs,
        outputs=outputs,
        invoke=invoke,
        display_name=display_name or getattr(cls, "DISPLAY_NAME", None) or class_type,
        description=str(getattr(cls, "DESCRIPTION", "") or ""),
        category=str(getattr(cls, "CATEGORY", "") or ""),
        output_node=bool(getattr(cls, "OUTPUT_NODE", False)),
        version=str(getattr(cls, "VERSION", "1")),
        input_is_list=bool(getattr(cls, "INPUT_IS_LIST", False)),
        not_idempotent=bool(getattr(cls, "NOT_IDEMPOTENT", False)),
        is_async=inspect.iscoroutinefunction(function),
        fingerprint=(lambda literal: is_changed(**literal)) if callable(is_changed) else None,
        validate=(lambda values: validate(**values)) if callable(validate) else None,
        validate_wants_types=bool(validate_params and "input_types" in validate_params),
        validate_inputs=validate_params,
        check_lazy=check_lazy if has_lazy else None,
        input_refresh=read_inputs,
        python_module=python_module,
        pack=pack,
        deprecated=bool(getattr(cls, "DEPRECATED", False)),
        experimental=bool(getattr(cls, "EXPERIMENTAL", False)),
    )


def _param_names(fn: Any) -> frozenset[str] | None:
    """The inputs a validator takes by name; None when it takes **kwargs (then it sees all of them)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params)


def parse_input_types(where: str, declared: Any) -> tuple[InputSpec, ...]:
    if not isinstance(declared, Mapping):
        raise SpecError(f"{where}: INPUT_TYPES() must return a dict, got {type(declared).__name__}")
    unknown = set(declared) - {"required", "optional", "hidden"}
    if unknown:
        raise SpecError(f"{where}: INPUT_TYPES() has unknown sections {sorted(unknown)}")
    inputs: list[InputSpec] = []
    for kind in ("required", "optional", "hidden"):
        section = declared.get(kind) or {}
        if not isinstance(section, Mapping):
            raise SpecError(f"{where}: INPUT_TYPES()[{kind!r}] must be a dict, got {type(section).__name__}")
        for name, entry in section.items():
            if not isinstance(name, str):
                raise SpecError(f"{where}: input name {name!r} is not a string")
            inputs.append(_parse_input(f"{where}, input {name!r}", name, kind, entry))
    return tuple(inputs)


def _parse_input(where: str, name: str, kind: InputKind, entry: Any) -> InputSpec:
    if kind == "hidden":
        if isinstance(entry, tuple | list) and entry:
            entry = entry[0]
        if not isinstance(entry, str):
            raise SpecError(f"{where}: a hidden input is named by a string such as 'UNIQUE_ID', got {entry!r}")
        return InputSpec(name=name, type=entry, kind="hidden", hidden=entry)
    if isinstance(entry, str):
        entry = (entry,)
    if not isinstance(entry, tuple | list) or not entry or len(entry) > 2:
        raise SpecError(f"{where}: expected (TYPE,) or (TYPE, options), got {entry!r}")
    head = entry[0]
    opts = entry[1] if len(entry) == 2 else {}
    if opts is None:
        opts = {}
    if not isinstance(opts, Mapping):
        raise SpecError(f"{where}: options must be a dict, got {type(opts).__name__}")
    choices: tuple[Any, ...] | None = None
    if isinstance(head, list | tuple):
        choices, type_name = tuple(head), COMBO
    elif isinstance(head, str) and head:
        type_name = head
        if head == COMBO:
            listed = opts.get("options", ())
            if not isinstance(listed, list | tuple):
                raise SpecError(f"{where}: COMBO options must be a list, got {listed!r}")
            choices = tuple(listed)
    else:
        raise SpecError(f"{where}: the type must be a string or a list of choices, got {head!r}")
    default = opts.get("default")
    if default is None and choices:
        default = choices[0]
    number = type_name in (INT, FLOAT)
    return InputSpec(
        name=name,
        type=type_name,
        kind=kind,
        default=default,
        min=opts.get("min") if number else None,
        max=opts.get("max") if number else None,
        step=opts.get("step") if number else None,
        choices=choices,
        multiline=bool(opts.get("multiline", False)),
        tooltip=opts.get("tooltip"),
        lazy=bool(opts.get("lazy", False)),
        force_input=bool(opts.get("forceInput", False)),
        control_after_generate=bool(opts.get("control_after_generate", False)),
        options={k: v for k, v in opts.items() if k not in _KNOWN_OPTIONS},
    )


def parse_outputs(where: str, cls: type) -> tuple[OutputSpec, ...]:
    types = getattr(cls, "RETURN_TYPES", ())
    if not isinstance(types, tuple | list):
        raise SpecError(f"{where}: RETURN_TYPES must be a tuple, got {type(types).__name__}")
    names = getattr(cls, "RETURN_NAMES", None) or ()
    is_list = getattr(cls, "OUTPUT_IS_LIST", None) or ()
    tooltips = getattr(cls, "OUTPUT_TOOLTIPS", None) or ()
    outputs = []
    for i, t in enumerate(types):
        if isinstance(t, list | tuple):
            t = COMBO
        if not isinstance(t, str) or not t:
            raise SpecError(f"{where}: RETURN_TYPES[{i}] must be a type name, got {t!r}")
        outputs.append(
            OutputSpec(
                type=t,
                name=names[i] if i < len(names) else t,
                is_list=bool(is_list[i]) if i < len(is_list) else False,
                tooltip=tooltips[i] if i < len(tooltips) else None,
            )
        )
    return tuple(outputs)
