"""Turns protocol-style node classes (INPUT_TYPES, RETURN_TYPES, FUNCTION, ...) into NodeSpecs."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from engine.context import current_context
from engine.spec import InputKind, InputSpec, NodeSpec, OutputSpec, SpecError
from engine.types import ANY, COMBO, FLOAT, INT

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
    class_type: str | None,
    cls: type,
    display_name: str | None = None,
    python_module: str = "custom_nodes",
    pack: str | None = None,
) -> NodeSpec:
    """Read a protocol class as leniently as the reference does; raises SpecError naming the class and what is
    wrong only when the declaration cannot be read at all. What is odd but workable (a default outside its
    range, an input declared twice, no FUNCTION) is kept and listed in the spec's `warnings`.

    A class that builds its own spec (`__loom_spec__`, as V3 nodes in compat.comfy_api do) is asked for it;
    `class_type` None then means "the id the class declares"."""
    build = getattr(cls, "__loom_spec__", None) if inspect.isclass(cls) else None
    if callable(build):
        built = build(class_type, display_name, python_module, pack)
        if not isinstance(built, NodeSpec):
            raise SpecError(f"{cls!r}: __loom_spec__ returned {type(built).__name__}, not a NodeSpec")
        return built
    where = f"node {class_type!r}"
    if not inspect.isclass(cls):
        raise SpecError(f"{where}: expected a class, got {type(cls).__name__}")
    if class_type is None:
        raise SpecError(f"{cls.__name__}: a protocol node class needs its name from NODE_CLASS_MAPPINGS")
    input_types = getattr(cls, "INPUT_TYPES", None)
    if not callable(input_types):
        raise SpecError(f"{where}: has no INPUT_TYPES classmethod")
    warnings: list[str] = []
    function_name = getattr(cls, "FUNCTION", None)
    method = function_name if isinstance(function_name, str) else ""
    runnable = bool(method) and callable(getattr(cls, method, None))
    if not runnable:
        warnings.append(f"{where}: FUNCTION {function_name!r} names no method, so the node cannot run")

    def read_inputs(notes: list[str] | None = None) -> tuple[InputSpec, ...]:
        try:
            declared = input_types()
        except Exception as exc:
            raise SpecError(f"{where}: INPUT_TYPES() raised {type(exc).__name__}: {exc}") from exc
        return parse_input_types(where, declared, notes)

    inputs = read_inputs(warnings)
    outputs = parse_outputs(where, cls)
    function = getattr(cls, method, None) if runnable else None
    is_changed = getattr(cls, "IS_CHANGED", None)
    validate = getattr(cls, "VALIDATE_INPUTS", None)
    validate_params = param_names(validate) if callable(validate) else None
    has_lazy = callable(getattr(cls, "check_lazy_status", None))

    instances: dict[str, Any] = {}

    def instance() -> Any:
        """One instance per node id, kept while this class is registered: packs keep state on `self` across calls
        and prompts (a node id that appears again, after any other prompt, gets its instance back)."""
        ctx = current_context()
        if ctx is None:
            return cls()
        obj = instances.get(ctx.node_id)
        if obj is None:
            obj = instances[ctx.node_id] = cls()
        return obj

    def invoke(kwargs: dict[str, Any]) -> Any:
        kwargs.pop("__context__", None)
        if not runnable:
            raise SpecError(f"{where} cannot run: its FUNCTION {function_name!r} names no method of the class")
        return getattr(instance(), method)(**kwargs)

    def check_lazy(kwargs: dict[str, Any]) -> Any:
        return instance().check_lazy_status(**kwargs)

    spec = NodeSpec(
        class_type=class_type,
        inputs=inputs,
        outputs=outputs,
        invoke=invoke,
        display_name=str(display_name or getattr(cls, "DISPLAY_NAME", None) or class_type),
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
        lenient=True,
    )
    spec.warnings[:0] = warnings
    return spec


def param_names(fn: Any) -> frozenset[str] | None:
    """The inputs a validator takes by name; None when it takes **kwargs (then it sees all of them)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params)


def socket_type(value: Any) -> str | None:
    """A declared type as a socket name. The "any type" trick (a `str` subclass whose comparisons always match,
    so the canvas links it to everything) is `*`; anything else that is not a non-empty string is None."""
    if isinstance(value, str) and type(value) is not str and (value == _PROBE or (value != _PROBE) is False):
        return ANY
    if isinstance(value, str) and value:
        return str(value)
    return None


_PROBE = "\x00loom-probe"


def parse_input_types(where: str, declared: Any, warnings: list[str] | None = None) -> tuple[InputSpec, ...]:
    """The inputs of an INPUT_TYPES() dict. An input named in two sections keeps its first declaration, and an
    unknown section is skipped; both are noted in `warnings` when given."""
    notes = warnings if warnings is not None else []
    if not isinstance(declared, Mapping):
        raise SpecError(f"{where}: INPUT_TYPES() must return a dict, got {type(declared).__name__}")
    unknown = set(declared) - {"required", "optional", "hidden"}
    if unknown:
        notes.append(f"{where}: INPUT_TYPES() sections {sorted(map(str, unknown))} are not inputs and are skipped")
    inputs: dict[str, InputSpec] = {}
    for kind in ("required", "optional", "hidden"):
        section = declared.get(kind) or {}
        if not isinstance(section, Mapping):
            raise SpecError(f"{where}: INPUT_TYPES()[{kind!r}] must be a dict, got {type(section).__name__}")
        for name, entry in section.items():
            if not isinstance(name, str):
                raise SpecError(f"{where}: input name {name!r} is not a string")
            if name in inputs:
                notes.append(f"{where}: input {name!r} is declared again under {kind!r}; the first is kept")
                continue
            inputs[name] = _parse_input(f"{where}, input {name!r}", name, kind, entry)
    return tuple(inputs.values())


def _parse_input(where: str, name: str, kind: InputKind, entry: Any) -> InputSpec:
    if kind == "hidden":
        return _parse_hidden(name, entry)
    if isinstance(entry, str):
        entry = (entry,)
    if not isinstance(entry, tuple | list) or not entry:
        raise SpecError(f"{where}: expected (TYPE,) or (TYPE, options), got {entry!r}")
    head = entry[0]
    opts = entry[1] if len(entry) >= 2 else {}  # a third element (some packs add one) carries nothing Loom reads
    if opts is None:
        opts = {}
    if not isinstance(opts, Mapping):
        raise SpecError(f"{where}: options must be a dict, got {type(opts).__name__}")
    choices: tuple[Any, ...] | None = None
    if isinstance(head, list | tuple):
        choices, type_name = tuple(head), COMBO
    elif (declared := socket_type(head)) is not None:
        type_name = declared
        if type_name == COMBO:
            listed = opts.get("options", ())
            if not isinstance(listed, list | tuple):
                raise SpecError(f"{where}: COMBO options must be a list, got {listed!r}")
            choices = tuple(listed)
    else:
        raise SpecError(f"{where}: the type must be a string or a list of choices, got {head!r}")
    default = opts.get("default")
    if isinstance(default, list) and type_name != COMBO and len(default) == 1:
        default = default[0]  # `{"default": [512]}`: the reference's widgets read the single item
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


def _parse_hidden(name: str, entry: Any) -> InputSpec:
    """A hidden input names what the executor fills in ("UNIQUE_ID", "PROMPT", ...). Packs also give a combo or
    an options dict here; such an input is passed None, as the reference does."""
    if isinstance(entry, tuple | list) and entry:
        entry = entry[0]
    kind = socket_type(entry) if not isinstance(entry, list | tuple) else None
    return InputSpec(name=name, type=kind or name, kind="hidden", hidden=kind or name)


def parse_outputs(where: str, cls: type) -> tuple[OutputSpec, ...]:
    types = getattr(cls, "RETURN_TYPES", ())
    if not isinstance(types, tuple | list):
        raise SpecError(f"{where}: RETURN_TYPES must be a tuple, got {type(types).__name__}")
    names = getattr(cls, "RETURN_NAMES", None) or ()
    is_list = getattr(cls, "OUTPUT_IS_LIST", None) or ()
    tooltips = getattr(cls, "OUTPUT_TOOLTIPS", None) or ()
    outputs = []
    for i, declared in enumerate(types):
        t = COMBO if isinstance(declared, list | tuple) else socket_type(declared)
        if t is None:
            raise SpecError(f"{where}: RETURN_TYPES[{i}] must be a type name, got {declared!r}")
        outputs.append(
            OutputSpec(
                type=t,
                name=str(names[i]) if i < len(names) else t,
                is_list=bool(is_list[i]) if i < len(is_list) else False,
                tooltip=tooltips[i] if i < len(tooltips) else None,
            )
        )
    return tuple(outputs)
