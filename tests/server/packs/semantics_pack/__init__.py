"""A node pack shaped like the ones packs ship (protocol classes in NODE_CLASS_MAPPINGS) whose nodes report, in
their display output, what the engine handed them: the execution-semantics tests read it back over the API."""

from __future__ import annotations

from typing import Any

import torch
from comfy_execution.graph import ExecutionBlocker
from comfy_execution.graph_utils import GraphBuilder

CATEGORY = "semantics_test"


def _ui(**values: Any) -> dict[str, Any]:
    return {"ui": {k: v if isinstance(v, list) else [v] for k, v in values.items()}}


class Base:
    CATEGORY = CATEGORY
    FUNCTION = "run"


class SemShow(Base):
    """Shows what arrived, by type and repr."""

    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",)}}

    def run(self, value):
        return _ui(type=type(value).__name__, repr=repr(value))


class SemTyped(Base):
    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "i": ("INT", {"default": 0, "min": 0, "max": 100}),
                "f": ("FLOAT", {"default": 0.0}),
                "s": ("STRING", {"default": ""}),
                "b": ("BOOLEAN", {"default": False}),
            }
        }

    def run(self, i, f, s, b):
        return _ui(types=[type(v).__name__ for v in (i, f, s, b)], values=[i, f, s, b])


class SemSource(Base):
    RETURN_TYPES = ("A,B",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def run(self):
        return (1,)


def _sink(input_type: str, validate: Any = None) -> type:
    body: dict[str, Any] = {
        "OUTPUT_NODE": True,
        "RETURN_TYPES": (),
        "INPUT_TYPES": classmethod(lambda cls: {"required": {"x": (input_type,)}}),
        "run": lambda self, x: _ui(x=x),
    }
    if validate is not None:
        body["VALIDATE_INPUTS"] = classmethod(validate)
    return type(f"Sink_{input_type}", (Base,), body)


class SemValidated(Base):
    """VALIDATE_INPUTS (a coroutine) names n (so n skips its range), the linked input, a hidden input and
    input_types; it fails with what it saw unless it got what the protocol promises."""

    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "n": ("INT", {"default": 0, "min": 0, "max": 10}),
                "linked": ("INT",),
                "choice": (["a", "b"],),
            },
            "hidden": {"uid": "UNIQUE_ID"},
        }

    @classmethod
    async def VALIDATE_INPUTS(cls, n, linked, uid, input_types):
        if type(n) is int and linked is None and isinstance(uid, str) and input_types == {"linked": "INT"}:
            return True
        return f"saw n={n!r} linked={linked!r} uid={uid!r} input_types={input_types!r}"

    def run(self, n, linked, choice, uid):
        return _ui(n=n, linked=linked, choice=choice)


class SemKwargs(Base):
    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"f": ("FLOAT", {"default": 0.5, "min": 0, "max": 1}), "c": (["x", "y"],)}}

    @classmethod
    def VALIDATE_INPUTS(cls, **kwargs):
        return True

    def run(self, f, c):
        return _ui(f=f, f_type=type(f).__name__, c=c)


class SemRefuse(Base):
    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT", {"default": 0})}}

    @classmethod
    def VALIDATE_INPUTS(cls, x):
        return "never valid"

    def run(self, x):
        return _ui(x=x)


class SemChanged(Base):
    """IS_CHANGED records its arguments; the node shows them."""

    RETURN_TYPES = ("INT",)
    OUTPUT_NODE = True
    seen: dict[str, Any] = {}

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"value": ("INT",), "literal": ("INT", {"default": 0})},
            "hidden": {"uid": "UNIQUE_ID", "prompt": "PROMPT"},
        }

    @classmethod
    def IS_CHANGED(cls, value, literal, uid, prompt):
        cls.seen = {"value": value, "literal": literal, "uid": uid, "prompt_nodes": sorted(prompt)}
        return literal

    def run(self, value, literal, uid, prompt):
        return {"ui": {"seen": [dict(type(self).seen)]}, "result": (value + literal,)}


class SemList(Base):
    RETURN_TYPES = ("INT",)
    OUTPUT_IS_LIST = (True,)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"count": ("INT", {"default": 3, "min": 0, "max": 100})}}

    def run(self, count):
        return (list(range(1, count + 1)),)


class SemAdd(Base):
    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"default": 0}), "b": ("INT", {"default": 0})}}

    def run(self, a, b):
        return (a + b,)


class SemMaybeExpand(Base):
    """Odd items expand into SemAdd(x, 100); even ones return x as it is."""

    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT",)}}

    def run(self, x):
        if x % 2 == 0:
            return (x,)
        graph = GraphBuilder()
        add = graph.node("SemAdd", a=x, b=100)
        return {"result": (add.out(0),), "expand": graph.finalize()}


class SemCollect(Base):
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    INPUT_IS_LIST = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"values": ("*",)}}

    def run(self, values):
        shown = [list(v.shape) if isinstance(v, torch.Tensor) else v for v in values]
        return _ui(values=shown)


class SemRaw(Base):
    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"src": ("INT", {"rawLink": True})}}

    def run(self, src):
        return _ui(src=[src])


class SemHidden(Base):
    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {},
            "hidden": {
                "uid": "UNIQUE_ID",
                "extra": "LOOM_TEST_VALUE",
                "png": "EXTRA_PNGINFO",
                "token": "AUTH_TOKEN_COMFY_ORG",
                "key": "API_KEY_COMFY_ORG",
            },
        }

    def run(self, **kwargs):
        shown = {k: kwargs.get(k, "<absent>") for k in ("extra", "png", "token", "key")}
        return _ui(keys=sorted(kwargs), **shown)


class SemDyn(Base):
    """Reports what DYNPROMPT says about this node."""

    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}, "optional": {"x": ("INT",)}, "hidden": {"dyn": "DYNPROMPT", "uid": "UNIQUE_ID"}}

    def run(self, dyn, uid, x=None):
        try:
            dyn.get_node("no-such-node")
            missing = "returned"
        except Exception as exc:
            missing = type(exc).__name__
        return _ui(
            node=dyn.get_node(uid),
            has=dyn.has_node(uid),
            ids=sorted(dyn.all_node_ids()),
            original=sorted(dyn.get_original_prompt()),
            real=dyn.get_real_node_id(uid),
            parent=dyn.get_parent_node_id(uid),
            display=dyn.get_display_node_id(uid),
            missing=missing,
        )


class SemDynExpand(Base):
    """Expands into a SemDyn shown as node `show_as`."""

    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"show_as": ("STRING", {"default": ""})}}

    def run(self, show_as):
        graph = GraphBuilder()
        node = graph.node("SemDyn", id="inner")
        node.set_override_display_id(show_as)
        return {"result": (), "expand": graph.finalize()}


class SemCounter(Base):
    """Counts its calls on `self`; always runs."""

    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"tag": ("STRING", {"default": ""})}}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    def run(self, tag):
        self.calls = getattr(self, "calls", 0) + 1
        return _ui(calls=self.calls)


class SemLazySwitch(Base):
    """Always runs, and asks only for the input it picks."""

    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "pick": ("BOOLEAN", {"default": True}),
                "on": ("INT", {"lazy": True}),
                "off": ("INT", {"lazy": True}),
            }
        }

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    def check_lazy_status(self, pick, on=None, off=None):
        return ["on"] if pick else ["off"]

    def run(self, pick, on=None, off=None):
        return (on if pick else off,)


class SemLinkExpand(Base):
    """Always runs; expands into SemAdd(<output 0 of prompt node `target`>, 1)."""

    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"target": ("STRING", {"default": ""})}}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    def run(self, target):
        graph = GraphBuilder()
        add = graph.node("SemAdd", a=[target, 0], b=1)
        return {"result": (add.out(0),), "expand": graph.finalize()}


class SemBlock(Base):
    """Blocks what depends on it, with a message (a warning for the client)."""

    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT",)}}

    def run(self, x):
        return (ExecutionBlocker("held back on purpose"),)


class SemBoom(Base):
    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT",)}}

    def run(self, x):
        raise ValueError(f"boom {x}")


class SemGray(Base):
    """An image of one grey level (or a list of `count` batches of sizes from `sizes`)."""

    RETURN_TYPES = ("IMAGE",)
    OUTPUT_IS_LIST = (True,)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"level": ("FLOAT", {"default": 0.5}), "sizes": ("STRING", {"default": "1"})}}

    def run(self, level, sizes):
        return ([torch.full((int(n), 4, 4, 3), level) for n in sizes.split(",")],)


class SemLatents(Base):
    """A list of latent batches of the sizes given; the first has a noise mask."""

    RETURN_TYPES = ("LATENT",)
    OUTPUT_IS_LIST = (True,)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sizes": ("STRING", {"default": "1"})}}

    def run(self, sizes):
        out = [{"samples": torch.zeros(int(n), 4, 2, 2)} for n in sizes.split(",")]
        out[0]["noise_mask"] = torch.zeros(int(sizes.split(",")[0]), 1, 2, 2)
        return (out,)


class SemLatentShapes(Base):
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    INPUT_IS_LIST = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"latents": ("LATENT",)}}

    def run(self, latents):
        return _ui(
            shapes=[list(x["samples"].shape) for x in latents],
            masks=[list(x["noise_mask"].shape) if "noise_mask" in x else None for x in latents],
        )


NODE_CLASS_MAPPINGS = {
    cls.__name__: cls
    for cls in (
        SemShow,
        SemTyped,
        SemSource,
        SemValidated,
        SemKwargs,
        SemRefuse,
        SemChanged,
        SemList,
        SemAdd,
        SemMaybeExpand,
        SemCollect,
        SemRaw,
        SemHidden,
        SemDyn,
        SemDynExpand,
        SemCounter,
        SemLazySwitch,
        SemLinkExpand,
        SemBlock,
        SemBoom,
        SemGray,
        SemLatents,
        SemLatentShapes,
    )
}
NODE_CLASS_MAPPINGS |= {
    "SemSinkBC": _sink("B,C"),
    "SemSinkStar": _sink("*"),
    "SemSinkD": _sink("D", lambda cls, x: True),
    "SemSinkDTypes": _sink("D", lambda cls, input_types: input_types == {"x": "A,B"} or f"saw {input_types!r}"),
}
