"""`comfy_api.latest.io`: the V3 node API (`io.ComfyNode` with `define_schema()` and an `execute` classmethod).

A V3 node is read by building the V1 view of its schema (the INPUT_TYPES dict the reference derives from it) and
parsing that with the same lenient reader as protocol nodes (engine.protocol), so both APIs accept the same shapes.
Running it calls `execute` on a per-call subclass whose `hidden` holds the hidden values (so concurrent async runs
never share them) and turns the `NodeOutput` into the engine's `{"result", "ui", "expand"}` shape;
`block_execution` blocks every output. `__loom_spec__` is how engine.protocol recognises these classes.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Iterable
from typing import Any, ClassVar

from engine.blocker import ExecutionBlocker
from engine.protocol import param_names, parse_input_types
from engine.spec import NodeSpec, OutputSpec, SpecError


class Hidden(enum.StrEnum):
    """Values the executor hands a node that are not inputs on the canvas."""

    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


class HiddenHolder:
    """`cls.hidden` while a node runs: one attribute per Hidden member (None when the node did not ask for it)."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        values = values or {}
        for member in Hidden:
            setattr(self, member.name, values.get(member.value))


class NumberDisplay(enum.StrEnum):
    number = "number"
    slider = "slider"


class FolderType(enum.StrEnum):
    input = "input"
    output = "output"
    temp = "temp"


# V3 option names that the V1 view spells differently.
_V1_OPTION = {
    "force_input": "forceInput",
    "display_mode": "display",
    "dynamic_prompts": "dynamicPrompts",
    "upload": "image_upload",
}


class Input:
    """An input of a V3 schema; `options` holds the widget options (default, min, max, ...) by their V3 names."""

    io_type: ClassVar[str] = "*"

    def __init__(
        self,
        id: str,
        display_name: str | None = None,
        optional: bool = False,
        tooltip: str | None = None,
        lazy: bool | None = None,
        default: Any = None,
        **options: Any,
    ) -> None:
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.default = default
        self.options = options

    def get_io_type(self) -> Any:
        return self.io_type

    def as_dict(self) -> dict[str, Any]:
        """The V1 option dict."""
        extra = self.options.get("extra_dict") or {}
        opts: dict[str, Any] = {}
        for key, value in (("default", self.default), ("tooltip", self.tooltip), ("lazy", self.lazy)):
            if value is not None:
                opts[key] = value
        if self.display_name:
            opts["display_name"] = self.display_name
        for key, value in self.options.items():
            if value is None or key == "extra_dict":
                continue
            opts[_V1_OPTION.get(key, key)] = value.value if isinstance(value, enum.Enum) else value
        opts.update(extra)
        return opts

    def v1(self) -> tuple[Any, dict[str, Any]]:
        return (self.get_io_type(), self.as_dict())


class Output:
    """An output of a V3 schema."""

    io_type: ClassVar[str] = "*"

    def __init__(
        self,
        id: str | None = None,
        display_name: str | None = None,
        tooltip: str | None = None,
        is_output_list: bool = False,
        **options: Any,
    ) -> None:
        self.id = id
        self.display_name = display_name
        self.tooltip = tooltip
        self.is_output_list = is_output_list
        self.options = options

    def get_io_type(self) -> str:
        return self.io_type

    @property
    def name(self) -> str:
        return str(self.display_name or self.id or self.get_io_type())


class ComfyTypeIO:
    """A socket type: `Type.Input(...)` and `Type.Output(...)` declare inputs and outputs of it."""

    io_type: ClassVar[str] = "*"
    Type: ClassVar[Any] = Any
    Input: ClassVar[type[Input]] = Input
    Output: ClassVar[type[Output]] = Output

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _bind(cls, cls.io_type)


ComfyTypeI = ComfyTypeIO


def _bind(cls: type[ComfyTypeIO], io_type: str) -> None:
    """Give a type its own Input/Output classes carrying its io_type (a subclass may define richer ones)."""
    cls.io_type = io_type
    for part in ("Input", "Output"):
        base = cls.__dict__.get(part) or getattr(cls, part)
        setattr(cls, part, type(part, (base,), {"io_type": io_type, "__qualname__": f"{cls.__name__}.{part}"}))


def comfytype(io_type: str, **kwargs: Any) -> Any:
    """`@io.comfytype(io_type="MY_TYPE")` over a ComfyTypeIO subclass: a custom socket type."""

    def decorate(cls: type[ComfyTypeIO]) -> type[ComfyTypeIO]:
        _bind(cls, io_type)
        return cls

    return decorate


_custom: dict[str, type[ComfyTypeIO]] = {}


def Custom(io_type: str) -> type[ComfyTypeIO]:
    """A socket type by name, for the pack's own data (`io.Custom("CHEESE").Input("cheese")`)."""
    if io_type not in _custom:
        _custom[io_type] = type(io_type, (ComfyTypeIO,), {"io_type": io_type})
    return _custom[io_type]


def _socket(name: str, io_type: str) -> type[ComfyTypeIO]:
    return type(name, (ComfyTypeIO,), {"io_type": io_type, "__module__": __name__})


class Combo(ComfyTypeIO):
    io_type = "COMBO"

    class Input(Input):
        def __init__(self, id: str, options: Iterable[Any] | type[enum.Enum] | None = None, **kwargs: Any) -> None:
            super().__init__(id, **kwargs)
            if isinstance(options, type) and issubclass(options, enum.Enum):
                options = [member.value for member in options]
            self.choices = list(options or [])
            if self.default is None and self.choices:
                self.default = self.choices[0]

        def v1(self) -> tuple[Any, dict[str, Any]]:
            return (list(self.choices), self.as_dict())


class MultiCombo(Combo):
    io_type = "COMBO"

    class Input(Combo.Input):
        def __init__(self, id: str, options: Iterable[Any] | None = None, **kwargs: Any) -> None:
            super().__init__(id, options, **kwargs)
            self.options["multi_select"] = True


Boolean = _socket("Boolean", "BOOLEAN")
Int = _socket("Int", "INT")
Float = _socket("Float", "FLOAT")
String = _socket("String", "STRING")
Image = _socket("Image", "IMAGE")
Mask = _socket("Mask", "MASK")
Latent = _socket("Latent", "LATENT")
Conditioning = _socket("Conditioning", "CONDITIONING")
Sampler = _socket("Sampler", "SAMPLER")
Sigmas = _socket("Sigmas", "SIGMAS")
Noise = _socket("Noise", "NOISE")
Guider = _socket("Guider", "GUIDER")
Clip = _socket("Clip", "CLIP")
ControlNet = _socket("ControlNet", "CONTROL_NET")
Vae = _socket("Vae", "VAE")
Model = _socket("Model", "MODEL")
ClipVision = _socket("ClipVision", "CLIP_VISION")
ClipVisionOutput = _socket("ClipVisionOutput", "CLIP_VISION_OUTPUT")
StyleModel = _socket("StyleModel", "STYLE_MODEL")
Gligen = _socket("Gligen", "GLIGEN")
UpscaleModel = _socket("UpscaleModel", "UPSCALE_MODEL")
Audio = _socket("Audio", "AUDIO")
Video = _socket("Video", "VIDEO")
SVG = _socket("SVG", "SVG")
LoraModel = _socket("LoraModel", "LORA_MODEL")
LossMap = _socket("LossMap", "LOSS_MAP")
Hooks = _socket("Hooks", "HOOKS")
HookKeyframes = _socket("HookKeyframes", "HOOK_KEYFRAMES")
TimestepsRange = _socket("TimestepsRange", "TIMESTEPS_RANGE")
LatentOperation = _socket("LatentOperation", "LATENT_OPERATION")
Photomaker = _socket("Photomaker", "PHOTOMAKER")
Webcam = _socket("Webcam", "WEBCAM")
AnyType = _socket("AnyType", "*")


class MultiType:
    """An input that takes any of several types (`io.MultiType.Input("x", types=[io.Image, io.Mask])`); given an
    input instead of an id, it keeps that input's widget and adds the other types."""

    class Input(Input):
        def __init__(self, id: str | Input, types: Iterable[Any] = (), **kwargs: Any) -> None:
            self.widget = id if isinstance(id, Input) else None
            if self.widget is not None:
                super().__init__(self.widget.id, self.widget.display_name, self.widget.optional, self.widget.tooltip)
                self.default = self.widget.default
                self.options = dict(self.widget.options)
            else:
                super().__init__(str(id), **kwargs)
            names = [self.widget.io_type] if self.widget is not None else []
            names += [t if isinstance(t, str) else t.io_type for t in types]
            self.types = list(dict.fromkeys(names))

        def get_io_type(self) -> str:
            return ",".join(self.types) or "*"


class Schema:
    """A V3 node's declaration; `node_id` is the type name workflows use."""

    def __init__(
        self,
        node_id: str,
        display_name: str | None = None,
        category: str = "sd",
        inputs: list[Input] | None = None,
        outputs: list[Output] | None = None,
        hidden: list[Hidden] | None = None,
        description: str = "",
        is_input_list: bool = False,
        is_output_node: bool = False,
        is_deprecated: bool = False,
        is_experimental: bool = False,
        is_api_node: bool = False,
        not_idempotent: bool = False,
        enable_expand: bool = False,
        **extra: Any,
    ) -> None:
        self.node_id = node_id
        self.display_name = display_name
        self.category = category
        self.inputs = list(inputs or [])
        self.outputs = list(outputs or [])
        self.hidden = list(hidden or [])
        self.description = description
        self.is_input_list = is_input_list
        self.is_output_node = is_output_node
        self.is_deprecated = is_deprecated
        self.is_experimental = is_experimental
        self.is_api_node = is_api_node
        self.not_idempotent = not_idempotent
        self.enable_expand = enable_expand
        self.extra = extra

    def validate(self) -> None:
        if not isinstance(self.node_id, str) or not self.node_id:
            raise SpecError(f"io.Schema needs a node_id string, got {self.node_id!r}")
        ids = [i.id for i in self.inputs]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise SpecError(f"node {self.node_id!r}: input ids repeat: {repeated}")

    def v1_inputs(self) -> dict[str, dict[str, Any]]:
        """The INPUT_TYPES dict the reference derives from this schema."""
        view: dict[str, dict[str, Any]] = {"required": {}, "optional": {}, "hidden": {}}
        for item in self.inputs:
            view["optional" if item.optional else "required"][item.id] = item.v1()
        for member in self.hidden:
            value = Hidden(member).value
            view["hidden"][value] = value
        return {k: v for k, v in view.items() if v or k == "required"}


class NodeOutput:
    """What `execute` returns: the output values in order, plus an optional display (`ui`), a sub-graph to
    expand into (`expand`), or `block_execution` (a message) to stop everything downstream."""

    def __init__(self, *args: Any, ui: Any = None, expand: dict[str, Any] | None = None, block_execution: Any = None):
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self) -> tuple[Any, ...] | None:
        return self.args or None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeOutput:
        return cls(*(data.get("result") or ()), ui=data.get("ui"), expand=data.get("expand"))


# Names of the V1 view read from the class (`SomeV3Node.RETURN_TYPES`), computed from its schema.
_V1_VIEW = {
    "RETURN_TYPES": lambda s: tuple(o.get_io_type() for o in s.outputs),
    "RETURN_NAMES": lambda s: tuple(o.name for o in s.outputs),
    "OUTPUT_IS_LIST": lambda s: tuple(o.is_output_list for o in s.outputs),
    "OUTPUT_TOOLTIPS": lambda s: tuple(o.tooltip for o in s.outputs),
    "CATEGORY": lambda s: s.category,
    "DESCRIPTION": lambda s: s.description,
    "DISPLAY_NAME": lambda s: s.display_name,
    "OUTPUT_NODE": lambda s: s.is_output_node,
    "INPUT_IS_LIST": lambda s: s.is_input_list,
    "NOT_IDEMPOTENT": lambda s: s.not_idempotent,
    "DEPRECATED": lambda s: s.is_deprecated,
    "EXPERIMENTAL": lambda s: s.is_experimental,
}


class _NodeMeta(type):
    def __getattr__(cls, name: str) -> Any:
        if name in _V1_VIEW:
            return _V1_VIEW[name](cls.GET_SCHEMA())
        if name == "INPUT_TYPES":
            return lambda *args, **kwargs: cls.GET_SCHEMA().v1_inputs()
        raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")


class ComfyNode(metaclass=_NodeMeta):
    """Base of V3 nodes: classmethods `define_schema()` and `execute(**inputs)`, and optionally
    `validate_inputs`, `fingerprint_inputs` and `check_lazy_status`; `cls.hidden` holds hidden values."""

    hidden: ClassVar[HiddenHolder] = HiddenHolder()
    FUNCTION: ClassVar[str] = "EXECUTE_NORMALIZED"

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError(f"{cls.__name__} must define define_schema()")

    @classmethod
    def execute(cls, **kwargs: Any) -> NodeOutput:
        raise NotImplementedError(f"{cls.__name__} must define execute()")

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        schema = cls.define_schema()
        if not isinstance(schema, Schema):
            raise SpecError(f"{cls.__name__}.define_schema() must return io.Schema, got {type(schema).__name__}")
        schema.validate()
        return schema

    def EXECUTE_NORMALIZED(self, *args: Any, **kwargs: Any) -> Any:
        return _run(type(self), {}, kwargs)

    @classmethod
    def __loom_spec__(
        cls, class_type: str | None, display_name: str | None, python_module: str, pack: str | None
    ) -> NodeSpec:
        return node_spec(cls, class_type, display_name, python_module, pack)


def node_spec(
    cls: type[ComfyNode], class_type: str | None, display_name: str | None, python_module: str, pack: str | None
) -> NodeSpec:
    schema = cls.GET_SCHEMA()
    class_type = class_type or schema.node_id
    where = f"node {class_type!r}"
    warnings: list[str] = []

    def read_inputs(notes: list[str] | None = None) -> tuple[Any, ...]:
        return parse_input_types(where, cls.GET_SCHEMA().v1_inputs(), notes)

    inputs = read_inputs(warnings)
    hidden_names = frozenset(i.name for i in inputs if i.kind == "hidden")

    def split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        kwargs.pop("__context__", None)
        hidden = {name: kwargs.pop(name) for name in hidden_names if name in kwargs}
        return hidden, kwargs

    def invoke(kwargs: dict[str, Any]) -> Any:
        hidden, values = split(kwargs)
        return _run(cls, hidden, values)

    validate = _own(cls, "validate_inputs")
    fingerprint = _own(cls, "fingerprint_inputs")
    lazy = _own(cls, "check_lazy_status")
    validate_params = param_names(validate) if validate is not None else None
    spec = NodeSpec(
        class_type=class_type,
        inputs=inputs,
        outputs=tuple(OutputSpec(o.get_io_type(), o.name, bool(o.is_output_list), o.tooltip) for o in schema.outputs),
        invoke=invoke,
        display_name=str(display_name or schema.display_name or class_type),
        description=str(schema.description or ""),
        category=str(schema.category or ""),
        output_node=bool(schema.is_output_node),
        input_is_list=bool(schema.is_input_list),
        not_idempotent=bool(schema.not_idempotent),
        is_async=inspect.iscoroutinefunction(cls.execute),
        fingerprint=(lambda literal: fingerprint(**split(dict(literal))[1])) if fingerprint else None,
        validate=(lambda values: validate(**values)) if validate else None,
        validate_wants_types=bool(validate_params and "input_types" in validate_params),
        validate_inputs=validate_params,
        check_lazy=(lambda kwargs: lazy(**split(kwargs)[1])) if lazy else None,
        input_refresh=read_inputs,
        python_module=python_module,
        pack=pack,
        deprecated=bool(schema.is_deprecated),
        experimental=bool(schema.is_experimental),
        lenient=True,
    )
    spec.warnings[:0] = warnings
    return spec


def _own(cls: type, name: str) -> Any:
    """A classmethod the node defines (the base class defines none of these)."""
    method = getattr(cls, name, None)
    return method if callable(method) else None


def _run(cls: type[ComfyNode], hidden: dict[str, Any], values: dict[str, Any]) -> Any:
    """Call `execute` on a subclass carrying this call's hidden values; convert what it returns."""
    call = type(cls.__name__, (cls,), {"hidden": HiddenHolder(hidden), "__module__": cls.__module__})
    raw = call.execute(**values)
    if inspect.isawaitable(raw):
        return _finish(cls, raw)
    return as_result(cls, raw)


async def _finish(cls: type[ComfyNode], pending: Any) -> Any:
    return as_result(cls, await pending)


def as_result(cls: type[ComfyNode], raw: Any) -> Any:
    """A NodeOutput in the engine's dict shape; anything else (a tuple, a dict) passes through unchanged."""
    if not isinstance(raw, NodeOutput):
        return raw
    ui = raw.ui.as_dict() if hasattr(raw.ui, "as_dict") else raw.ui
    if raw.block_execution is not None:
        count = len(cls.GET_SCHEMA().outputs)
        return {"result": (ExecutionBlocker(str(raw.block_execution)),) * count, "ui": ui}
    out: dict[str, Any] = {"result": raw.args}
    if ui is not None:
        out["ui"] = ui
    if raw.expand is not None:
        out["expand"] = raw.expand
    return out


def __getattr__(name: str) -> Any:
    from compat.host import refuse

    refuse("comfy_api.latest.io", name)
