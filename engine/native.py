"""Loom's native node API: a decorated, annotated function becomes a node.

    @node(category="latent", outputs=[Out("LATENT", "latent")])
    def EmptyLatent(width: int = Int(512, min=16, max=8192, step=8), batch: int = 1) -> tuple:
        ...

Each parameter is an input. Its default declares it: an `Int`/`Float`/`String`/`Boolean`/`Combo` widget, a linked
`Socket("MODEL")`, a `Hidden("UNIQUE_ID")`, or a plain Python value whose annotation (`int`, `float`, `str`,
`bool`) gives the widget type. A parameter without a default is a required widget of its annotated type. A
parameter annotated `NodeContext` receives the running node's context and is not an input; put it after a bare `*`
(`def Load(name: str = Combo(...), *, ctx: NodeContext)`) so that it needs no default. Mistakes raise SpecError when
the module is imported, naming the node and the parameter.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, get_type_hints

from engine.context import NodeContext
from engine.environment import NodeEnvironment
from engine.spec import InputKind, InputSpec, NodeSpec, OutputSpec, SpecError
from engine.types import BOOLEAN, COMBO, FLOAT, INT, STRING

ChoicesSource = Sequence[Any] | Callable[[NodeEnvironment | None], Sequence[Any]]


@dataclass(frozen=True)
class Input:
    """A declared input; subclasses fix the socket type. `optional=True` puts it under the schema's optional."""

    type: str
    default: Any = None
    optional: bool = False
    tooltip: str | None = None
    lazy: bool = False
    force_input: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def to_spec(self, name: str, env: NodeEnvironment | None) -> InputSpec:
        kind: InputKind = "optional" if self.optional else "required"
        return InputSpec(
            name=name,
            type=self.type,
            kind=kind,
            default=self.default,
            tooltip=self.tooltip,
            lazy=self.lazy,
            force_input=self.force_input,
            options=self.options,
        )


def Socket(type: str, *, optional: bool = False, tooltip: str | None = None, lazy: bool = False) -> Input:
    """A linked input of any socket type (MODEL, LATENT, IMAGE, ...)."""
    return Input(type=type, optional=optional, tooltip=tooltip, lazy=lazy)


@dataclass(frozen=True)
class Hidden(Input):
    """A hidden input the executor fills in: UNIQUE_ID, PROMPT, EXTRA_PNGINFO or DYNPROMPT."""

    type: str = "UNIQUE_ID"

    def to_spec(self, name: str, env: NodeEnvironment | None) -> InputSpec:
        return InputSpec(name=name, type=self.type, kind="hidden", hidden=self.type)


@dataclass(frozen=True)
class _Number(Input):
    min: float | None = None
    max: float | None = None
    step: float | None = None
    control_after_generate: bool = False

    def to_spec(self, name: str, env: NodeEnvironment | None) -> InputSpec:
        return replace(
            super().to_spec(name, env),
            min=self.min,
            max=self.max,
            step=self.step,
            control_after_generate=self.control_after_generate,
        )


def Int(
    default: int | None = 0,
    *,
    min: int | None = None,
    max: int | None = None,
    step: int | None = None,
    optional: bool = False,
    tooltip: str | None = None,
    force_input: bool = False,
    control_after_generate: bool = False,
    lazy: bool = False,
    display: str | None = None,
) -> Input:
    """`display="color"` shows the number as a 0xRRGGBB colour picker on the canvas."""
    options = {"display": display} if display is not None else {}
    return _Number(INT, default, optional, tooltip, lazy, force_input, options, min, max, step, control_after_generate)


def Float(
    default: float | None = 0.0,
    *,
    min: float | None = None,
    max: float | None = None,
    step: float | None = None,
    round: float | None = None,
    optional: bool = False,
    tooltip: str | None = None,
    force_input: bool = False,
    lazy: bool = False,
    display: str | None = None,
) -> Input:
    """`display="number"` asks for a plain number box rather than a slider."""
    options: dict[str, Any] = {"round": round} if round is not None else {}
    if display is not None:
        options["display"] = display
    value = float(default) if default is not None else None
    return _Number(FLOAT, value, optional, tooltip, lazy, force_input, options, min, max, step)


def String(
    default: str | None = None,
    *,
    multiline: bool | None = None,
    dynamic_prompts: bool | None = None,
    optional: bool = False,
    tooltip: str | None = None,
    force_input: bool = False,
    lazy: bool = False,
) -> Input:
    """`dynamic_prompts` tells the canvas whether to expand {a|b} choices in the text before queueing; `multiline`
    is stated in the schema only when given (some reference classes state False)."""
    options: dict[str, Any] = {"multiline": multiline} if multiline is not None else {}
    if dynamic_prompts is not None:
        options["dynamicPrompts"] = dynamic_prompts
    return Input(STRING, default, optional, tooltip, lazy, force_input, options)


def Boolean(
    default: bool | None = False, *, optional: bool = False, tooltip: str | None = None, lazy: bool = False
) -> Input:
    return Input(BOOLEAN, default, optional, tooltip, lazy)


@dataclass(frozen=True)
class _Combo(Input):
    choices: ChoicesSource = ()

    def resolve_choices(self, env: NodeEnvironment | None) -> tuple[Any, ...]:
        return tuple(self.choices(env) if callable(self.choices) else self.choices)

    def to_spec(self, name: str, env: NodeEnvironment | None) -> InputSpec:
        choices = self.resolve_choices(env)
        default = self.default if self.default is not None else (choices[0] if choices else None)
        return InputSpec(
            name=name,
            type=COMBO,
            kind="optional" if self.optional else "required",
            default=default,
            choices=choices,
            publish_default=self.default is not None,
            tooltip=self.tooltip,
            lazy=self.lazy,
            options=self.options,
        )


def Combo(
    choices: ChoicesSource,
    default: Any = None,
    *,
    optional: bool = False,
    tooltip: str | None = None,
    lazy: bool = False,
    **options: Any,
) -> Input:
    """A choice among values; `choices` may be a callable taking the environment, re-read on every validation."""
    return _Combo(COMBO, default, optional, tooltip, lazy, False, options, choices)


@dataclass(frozen=True)
class Out:
    type: str
    name: str | None = None
    is_list: bool = False
    tooltip: str | None = None


_PLAIN_TYPES: dict[Any, str] = {int: INT, float: FLOAT, str: STRING, bool: BOOLEAN}
_WIDGET_FACTORIES: dict[str, Callable[[Any], Input]] = {
    INT: lambda d: Int(d),
    FLOAT: lambda d: Float(d),
    STRING: lambda d: String(d),
    BOOLEAN: lambda d: Boolean(d),
}


@dataclass
class NativeNode:
    """A node written with `@node`: a function plus its declaration, turned into a NodeSpec by the registry."""

    fn: Callable[..., Any]
    class_type: str
    declared: dict[str, Input]
    context_param: str | None
    outputs: tuple[OutputSpec, ...]
    options: dict[str, Any]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def to_spec(
        self, env: NodeEnvironment | None = None, python_module: str = "nodes", pack: str | None = None
    ) -> NodeSpec:
        opts = self.options
        inputs = tuple(inp.to_spec(name, env) for name, inp in self.declared.items())
        dynamic = any(isinstance(i, _Combo) and callable(i.choices) for i in self.declared.values())
        refresh = (lambda: tuple(inp.to_spec(n, env) for n, inp in self.declared.items())) if dynamic else None
        fn, ctx_param = self.fn, self.context_param
        # Python defaults of the function are Input descriptors, so absent optional inputs get their declared value.
        defaults = {name: inp.default for name, inp in self.declared.items() if inp.optional or isinstance(inp, Hidden)}
        if ctx_param is None:

            def invoke(kwargs: dict[str, Any]) -> Any:
                kwargs.pop("__context__", None)
                return fn(**(defaults | kwargs))
        else:

            def invoke(kwargs: dict[str, Any]) -> Any:
                ctx = kwargs.pop("__context__", None)
                return fn(**(defaults | kwargs), **{ctx_param: ctx})

        return NodeSpec(
            class_type=self.class_type,
            inputs=inputs,
            outputs=self.outputs,
            invoke=invoke,
            display_name=opts.get("display_name") or self.class_type,
            description=opts.get("description") or inspect.getdoc(fn) or "",
            category=opts.get("category", ""),
            output_node=opts.get("output_node", False),
            version=str(opts.get("version", "1")),
            input_is_list=opts.get("input_is_list", False),
            not_idempotent=opts.get("not_idempotent", False),
            is_async=inspect.iscoroutinefunction(fn),
            wants_context=ctx_param is not None,
            fingerprint=_keyword_hook(opts.get("fingerprint"), opts.get("always_run", False), env),
            validate=_keyword_hook(opts.get("validate"), False, env),
            validate_inputs=_hook_inputs(opts.get("validate")),
            check_lazy=_keyword_hook(opts.get("check_lazy"), False, env),
            input_refresh=refresh,
            python_module=python_module,
            pack=pack,
            deprecated=opts.get("deprecated", False),
            experimental=opts.get("experimental", False),
        )


ALWAYS = float("nan")


def _keyword_hook(
    hook: Callable[..., Any] | None, always: bool, env: NodeEnvironment | None
) -> Callable[[dict[str, Any]], Any] | None:
    """Hooks take the inputs by keyword; one that declares a parameter named `env` also gets the host environment,
    since validation and fingerprints run outside any node context (a loader must find its file to hash it).
    Inputs the hook does not name are left out unless it takes **kwargs (the engine offers every input, linked ones
    as None, as the protocol's hooks get them)."""
    if always:
        return lambda _inputs: ALWAYS
    if hook is None:
        return None
    params = inspect.signature(hook).parameters
    takes = None if any(p.kind == p.VAR_KEYWORD for p in params.values()) else frozenset(params) - {"env"}

    def call(inputs: dict[str, Any]) -> Any:
        given = inputs if takes is None else {k: v for k, v in inputs.items() if k in takes}
        return hook(**given, env=env) if "env" in params else hook(**given)

    return call


def _hook_inputs(hook: Callable[..., Any] | None) -> frozenset[str] | None:
    """The inputs a validate hook checks itself, as for VALIDATE_INPUTS; None when it takes **kwargs (all)."""
    if hook is None:
        return None
    params = inspect.signature(hook).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.name != "env")


def node(
    _fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    outputs: Sequence[Out | str] = (),
    category: str = "",
    display_name: str | None = None,
    description: str | None = None,
    output_node: bool = False,
    version: str | int = 1,
    fingerprint: Callable[..., Any] | None = None,
    always_run: bool = False,
    validate: Callable[..., Any] | None = None,
    check_lazy: Callable[..., Sequence[str] | None] | None = None,
    input_is_list: bool = False,
    not_idempotent: bool = False,
    deprecated: bool = False,
    experimental: bool = False,
    inputs: Mapping[str, Input] | None = None,
) -> Any:
    """Declare a node. `outputs` lists socket types or `Out`s; the function returns a tuple in that order (a single
    value when there is one output), or a NodeResult / protocol dict for display output and expansion.

    `inputs` declares further inputs, after the parameters', by names that are not Python identifiers (a block
    merge's `input_blocks.0.`); the function takes them through its `**kwargs`."""

    def wrap(fn: Callable[..., Any]) -> NativeNode:
        class_type = name or fn.__name__
        declared, ctx_param = _declared_inputs(class_type, fn, named=inputs is not None)
        for input_name, declared_input in (inputs or {}).items():
            if input_name in declared:
                raise SpecError(f"node {class_type!r}: input {input_name!r} is declared twice")
            declared[input_name] = declared_input
        outs = tuple(_output(class_type, o, i) for i, o in enumerate(outputs))
        names = [o.name for o in outs]
        if len(set(names)) != len(names):
            raise SpecError(f"node {class_type!r}: output names repeat: {names}")
        if check_lazy is not None and not any(i.lazy for i in declared.values()):
            raise SpecError(f"node {class_type!r}: check_lazy is given but no input is lazy")
        options = {
            "category": category,
            "display_name": display_name,
            "description": description,
            "output_node": output_node,
            "version": version,
            "fingerprint": fingerprint,
            "always_run": always_run,
            "validate": validate,
            "check_lazy": check_lazy,
            "input_is_list": input_is_list,
            "not_idempotent": not_idempotent,
            "deprecated": deprecated,
            "experimental": experimental,
        }
        native = NativeNode(fn, class_type, declared, ctx_param, outs, options)
        native.to_spec()  # fail at definition time, not when a workflow first uses the node
        return native

    return wrap(_fn) if _fn is not None else wrap


def _output(class_type: str, out: Out | str, index: int) -> OutputSpec:
    if isinstance(out, str):
        out = Out(out)
    if not isinstance(out, Out) or not out.type:
        raise SpecError(f"node {class_type!r}: output {index} must be a socket type or Out(...), got {out!r}")
    return OutputSpec(type=out.type, name=out.name or out.type, is_list=out.is_list, tooltip=out.tooltip)


def _declared_inputs(
    class_type: str, fn: Callable[..., Any], named: bool = False
) -> tuple[dict[str, Input], str | None]:
    try:
        hints = get_type_hints(fn)
    except Exception as exc:  # an annotation naming something undefined
        raise SpecError(f"node {class_type!r}: cannot read its annotations: {exc}") from exc
    declared: dict[str, Input] = {}
    ctx_param: str | None = None
    for param in inspect.signature(fn).parameters.values():
        where = f"node {class_type!r}, parameter {param.name!r}"
        if param.kind == param.VAR_KEYWORD and named:
            continue  # receives the inputs declared by name
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise SpecError(f"{where}: *args/**kwargs cannot be declared as inputs (name them with `inputs=`)")
        hint = hints.get(param.name)
        if hint is NodeContext:
            ctx_param = param.name
            continue
        default = param.default
        if isinstance(default, Input):
            declared[param.name] = default
        elif hint in _PLAIN_TYPES:
            widget = _WIDGET_FACTORIES[_PLAIN_TYPES[hint]]
            if default is param.empty:
                declared[param.name] = widget(None)
            elif type(default) is not hint and not (hint is float and type(default) is int):
                raise SpecError(f"{where}: default {default!r} does not match its annotation {_PLAIN_TYPES[hint]}")
            else:
                declared[param.name] = widget(default)
        else:
            raise SpecError(
                f"{where}: declare it with a default such as Int(...), Combo(...) or Socket('MODEL'), "
                "or annotate it int/float/str/bool"
            )
    return declared, ctx_param
