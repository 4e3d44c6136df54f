"""Tiny nodes for the engine tests, written in both APIs, that count their calls."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.blocker import ExecutionBlocker
from engine.context import NodeContext
from engine.native import Float, Int, Socket, String, node
from engine.registry import NodeRegistry


@dataclass
class Lab:
    """A registry of counting test nodes plus the switches the tests flip."""

    registry: NodeRegistry
    calls: Counter = field(default_factory=Counter)
    fail: set[str] = field(default_factory=set)  # values of Boom.tag that raise
    fingerprints: dict[str, Any] = field(default_factory=dict)
    seen: dict[str, Any] = field(default_factory=dict)
    gate: Any = None


def build_lab() -> Lab:
    lab = Lab(NodeRegistry())
    calls = lab.calls

    @node(outputs=["INT"], category="test")
    def Const(value: int = Int(1, min=0, max=1000)) -> int:
        calls["Const"] += 1
        return value

    @node(outputs=["INT"])
    def Add(a: int = Socket("INT"), b: int = Socket("INT"), k: int = Int(0, optional=True)) -> int:
        calls["Add"] += 1
        return a + b + k

    @node(outputs=["INT"])
    def Inc(a: int = Socket("INT"), k: int = Int(1, min=-1000, max=1000)) -> int:
        calls["Inc"] += 1
        return a + k

    @node(output_node=True)
    def Sink(a: int = Socket("INT")) -> dict:
        calls["Sink"] += 1
        return {"ui": {"value": [a]}}

    @node(outputs=["INT"])
    def Boom(a: int = Socket("INT"), tag: str = String("x")) -> int:
        calls["Boom"] += 1
        if tag in lab.fail:
            raise ValueError(f"boom {tag}")
        return a * 10

    @node(outputs=["INT"], fingerprint=lambda **kw: lab.fingerprints.get("Watched"))
    def Watched(name: str = String("f")) -> int:
        calls["Watched"] += 1
        return len(name)

    @node(outputs=["INT"], always_run=True)
    def Always(v: int = Int(3)) -> int:
        calls["Always"] += 1
        return v

    @node(outputs=["INT"], not_idempotent=True)
    def Unique(v: int = Int(3)) -> int:
        calls["Unique"] += 1
        return v

    @node(outputs=["INT"])
    def Slow(a: int = Socket("INT"), steps: int = Int(3), *, ctx: NodeContext) -> int:
        calls["Slow"] += 1
        for i in range(steps):
            if lab.gate is not None:
                lab.gate(i)
            ctx.progress(i + 1, steps)
        return a

    @node(outputs=["FLOAT"])
    def Half(a: int = Socket("INT"), scale: float = Float(0.5, min=0.0, max=1.0)) -> float:
        calls["Half"] += 1
        return a * scale

    for fn in (Const, Add, Inc, Sink, Boom, Watched, Always, Unique, Slow, Half):
        lab.registry.add_native(fn)
    lab.registry.add_protocol(protocol_nodes(lab))
    return lab


def protocol_nodes(lab: Lab) -> dict[str, type]:
    calls = lab.calls

    class Switch:
        @classmethod
        def INPUT_TYPES(cls):
            return {
                "required": {
                    "pick": ("BOOLEAN", {"default": True}),
                    "on_true": ("INT", {"lazy": True}),
                    "on_false": ("INT", {"lazy": True}),
                }
            }

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        def check_lazy_status(self, pick, on_true=None, on_false=None):
            return ["on_true"] if pick else ["on_false"]

        def run(self, pick, on_true=None, on_false=None):
            calls["Switch"] += 1
            return (on_true if pick else on_false,)

    class PMul:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"a": ("INT",), "factor": ("INT", {"default": 2, "min": 0, "max": 10})}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "mul"
        CATEGORY = "test"

        def mul(self, a, factor):
            calls["PMul"] += 1
            return (a * factor,)

    class PickMode:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"mode": (["fast", "slow"],), "a": ("INT",)}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        def run(self, mode, a):
            return (a,)

    class Even:
        """VALIDATE_INPUTS on `n`: the built-in range check of n is skipped, the custom one applies."""

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"n": ("INT", {"default": 0, "min": 0, "max": 10})}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        @classmethod
        def VALIDATE_INPUTS(cls, n):
            if n == 13:
                raise RuntimeError("unlucky")
            return True if n % 2 == 0 else f"n must be even, got {n}"

        def run(self, n):
            return (n,)

    class Typed:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"x": ("FLOAT",)}}

        RETURN_TYPES = ("FLOAT",)
        FUNCTION = "run"

        @classmethod
        def VALIDATE_INPUTS(cls, input_types):
            lab.seen["input_types"] = input_types
            return True

        def run(self, x):
            return (float(x),)

    class Repeat:
        """Node expansion: a chain of `times` Inc nodes after `a`."""

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"a": ("INT",), "times": ("INT", {"default": 2, "min": 0, "max": 50})}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        def run(self, a, times):
            calls["Repeat"] += 1
            graph: dict[str, Any] = {"c": {"class_type": "Const", "inputs": {"value": a}}}
            prev = "c"
            for i in range(times):
                graph[f"i{i}"] = {"class_type": "Inc", "inputs": {"a": [prev, 0], "k": 1}}
                prev = f"i{i}"
            return {"result": ([prev, 0],), "expand": graph}

    class Loopy:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"a": ("INT",)}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        def run(self, a):
            graph = {
                "x": {"class_type": "Inc", "inputs": {"a": ["y", 0], "k": 1}},
                "y": {"class_type": "Inc", "inputs": {"a": ["x", 0], "k": 1}},
            }
            return {"result": (["x", 0],), "expand": graph}

    class Gate:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"a": ("INT",), "open": ("BOOLEAN", {"default": True}), "why": ("STRING", {})}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        def run(self, a, open, why):
            calls["Gate"] += 1
            return (a if open else ExecutionBlocker(why or None),)

    class Range:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"n": ("INT", {"default": 3, "min": 0, "max": 100})}}

        RETURN_TYPES = ("INT",)
        OUTPUT_IS_LIST = (True,)
        FUNCTION = "run"

        def run(self, n):
            calls["Range"] += 1
            return (list(range(n)),)

    class Total:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"values": ("INT",)}}

        RETURN_TYPES = ("INT",)
        INPUT_IS_LIST = True
        FUNCTION = "run"

        def run(self, values):
            calls["Total"] += 1
            return (sum(values),)

    class Collect:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"values": ("*",)}, "hidden": {"uid": "UNIQUE_ID", "png": "EXTRA_PNGINFO"}}

        RETURN_TYPES = ()
        OUTPUT_NODE = True
        INPUT_IS_LIST = True
        FUNCTION = "run"

        def run(self, values, uid, png):
            lab.seen["collect"] = (list(values), uid, png)
            return {"ui": {"values": list(values)}}

    class AsyncWait:
        """Waits until `peers` AsyncWait nodes have started: only possible when they run concurrently."""

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"a": ("INT",), "peers": ("INT", {"default": 2})}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        async def run(self, a, peers):
            calls["AsyncWait"] += 1
            started = lab.seen.setdefault("started", [])
            started.append(a)
            for _ in range(200):
                if len(started) >= peers:
                    return (a,)
                await asyncio.sleep(0)
            raise RuntimeError("async peers did not run concurrently")

    class Hidden:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"a": ("INT",)}, "hidden": {"uid": "UNIQUE_ID", "prompt": "PROMPT"}}

        RETURN_TYPES = ("STRING",)
        FUNCTION = "run"

        def run(self, a, uid, prompt):
            lab.seen["hidden"] = (uid, sorted(prompt))
            return (uid,)

    return {
        "Switch": Switch,
        "PMul": PMul,
        "PickMode": PickMode,
        "Even": Even,
        "Typed": Typed,
        "Repeat": Repeat,
        "Loopy": Loopy,
        "Gate": Gate,
        "Range": Range,
        "Total": Total,
        "Collect": Collect,
        "AsyncWait": AsyncWait,
        "Hidden": Hidden,
    }


@pytest.fixture
def lab() -> Lab:
    return build_lab()
