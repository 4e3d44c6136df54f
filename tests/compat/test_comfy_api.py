"""The V3 node API (comfy_api.latest): a pack of our own loads through comfy_entrypoint() and its nodes run."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import compat
from engine.events import NodeExecuted, NodeProgress, NodeWarning
from engine.executor import Executor, RunOutcome
from engine.folders import Folders
from engine.packs import PackSummary, load_packs
from engine.registry import NodeRegistry
from engine.validate import validate
from engine.workflow import parse_api

V3_PACK = """
import asyncio

import torch

from comfy_api.latest import ComfyAPI, ComfyAPISync, ComfyExtension, io, ui
from comfy_api.v0_0_2 import ComfyAPI as PinnedAPI
from comfy_execution.graph_utils import GraphBuilder

SEEN = {}


class Mode(str):
    pass


class Scale(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3Scale",
            display_name="Scale a number",
            category="v3test",
            description="multiplies",
            inputs=[
                io.Float.Input("value", default=1.0, min=0.0, max=10.0, step=0.5, tooltip="the number"),
                io.Int.Input("times", default=2, min=1, max=8, display_mode=io.NumberDisplay.slider),
                io.Combo.Input("mode", options=["mul", "add"]),
                io.String.Input("label", multiline=True, default="hi", optional=True),
                io.Boolean.Input("flag", default=False, optional=True, label_on="yes"),
            ],
            outputs=[io.Float.Output(display_name="scaled"), io.String.Output("label_out")],
            hidden=[io.Hidden.unique_id, io.Hidden.prompt],
        )

    @classmethod
    def execute(cls, value, times, mode, label="hi", flag=False):
        SEEN["runs"] = SEEN.get("runs", 0) + 1
        SEEN["hidden"] = (cls.hidden.unique_id, sorted(cls.hidden.prompt or ()), cls.hidden.extra_pnginfo)
        ComfyAPISync().execution.set_progress(1, 2)
        result = value * times if mode == "mul" else value + times
        return io.NodeOutput(result, f"{label}:{result}")

    @classmethod
    def validate_inputs(cls, times):
        return True if times != 7 else "seven is not allowed"

    @classmethod
    def fingerprint_inputs(cls, value, times, mode, label="hi", flag=False):
        SEEN["fingerprints"] = SEEN.get("fingerprints", 0) + 1
        return SEEN.get("stamp", 0)


class AsyncShow(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3AsyncShow",
            category="v3test",
            inputs=[io.AnyType.Input("value")],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    async def execute(cls, value):
        await asyncio.sleep(0)
        image = torch.full((1, 4, 4, 3), 0.5)
        await ComfyAPI().execution.set_progress(3, 3, preview_image=image)
        await PinnedAPI().execution.set_progress(1, 1, node_id="elsewhere")
        return io.NodeOutput(ui=ui.PreviewText(str(value)))


class Lazy(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3Lazy",
            inputs=[
                io.Boolean.Input("first", default=True),
                io.Float.Input("a", lazy=True, force_input=True),
                io.Float.Input("b", lazy=True, force_input=True),
            ],
            outputs=[io.Float.Output()],
        )

    @classmethod
    def check_lazy_status(cls, first, a=None, b=None):
        wanted = "a" if first else "b"
        return [wanted] if (a if first else b) is None else []

    @classmethod
    def execute(cls, first, a=None, b=None):
        return io.NodeOutput(a if first else b)


class Expensive(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3Expensive", outputs=[io.Float.Output()])

    @classmethod
    def execute(cls):
        SEEN["expensive"] = True
        return io.NodeOutput(99.0)


class Doubled(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3Doubled",
            inputs=[io.Float.Input("value", default=1.0)],
            outputs=[io.Float.Output()],
            enable_expand=True,
        )

    @classmethod
    def execute(cls, value):
        graph = GraphBuilder()
        inner = graph.node("V3Scale", value=value, times=2, mode="mul")
        return io.NodeOutput(inner.out(0), expand=graph.finalize())


class Gate(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3Gate",
            inputs=[io.Boolean.Input("open", default=False), io.Float.Input("value", default=1.0)],
            outputs=[io.Float.Output()],
        )

    @classmethod
    def execute(cls, open, value):
        return io.NodeOutput(value) if open else io.NodeOutput(block_execution="gate closed")


class Picture(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3Picture",
            inputs=[io.Custom("CHEESE").Input("cheese", optional=True)],
            outputs=[io.Image.Output(), io.Custom("CHEESE").Output()],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, cheese=None):
        image = torch.zeros((2, 8, 8, 3))
        return io.NodeOutput(image, "gouda", ui=ui.PreviewImage(image, cls=cls))


class Broken(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        raise RuntimeError("schema exploded")


class Extension(ComfyExtension):
    async def on_load(self):
        SEEN["loaded"] = True

    async def get_node_list(self):
        return [Scale, AsyncShow, Lazy, Expensive, Doubled, Gate, Picture, Broken]


async def comfy_entrypoint():
    return Extension()
"""


@pytest.fixture
def v3(tmp_path: Path) -> Iterator[tuple[NodeRegistry, Any, PackSummary]]:
    folders = Folders.under(tmp_path / "loom")
    folders.ensure()
    registry = NodeRegistry(SimpleNamespace(folders=folders))
    compat.install(compat.Host(folders, registry))
    root = tmp_path / "custom_nodes"
    (root / "v3pack").mkdir(parents=True)
    (root / "v3pack" / "__init__.py").write_text(textwrap.dedent(V3_PACK))
    [summary] = load_packs(registry, [root])
    yield registry, sys.modules.get("custom_nodes.v3pack"), summary
    compat.uninstall()


def run(registry: NodeRegistry, prompt: dict[str, Any], events: list[Any] | None = None, **kw: Any) -> RunOutcome:
    workflow = parse_api(prompt)
    checked = validate(workflow, registry)
    assert checked.ok, checked.to_response()
    executor = kw.get("executor") or Executor(registry)
    return executor.run(
        workflow, outputs=checked.outputs, prompt_id="p", emit=(events.append if events is not None else lambda e: None)
    )


def test_the_entrypoint_registers_each_node_and_a_broken_one_is_rejected(v3: Any) -> None:
    registry, pack, summary = v3
    assert summary.status == "ok", summary.traceback
    assert summary.count == "7 of 8 nodes" and pack.SEEN["loaded"]
    [rejected] = summary.rejected
    assert rejected.class_type == "Broken" and "schema exploded" in rejected.reason
    assert registry.source("V3Scale") == "v3pack"


def test_the_schema_becomes_the_v1_view(v3: Any) -> None:
    registry, pack, _ = v3
    info = registry.get("V3Scale").schema()
    assert info["display_name"] == "Scale a number" and info["category"] == "v3test"
    assert info["description"] == "multiplies"
    required = info["input"]["required"]
    assert required["value"] == [
        "FLOAT",
        {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.5, "tooltip": "the number"},
    ]
    assert required["times"][1]["display"] == "slider"
    assert required["mode"] == [["mul", "add"], {"default": "mul"}]
    assert info["input"]["optional"]["label"] == ["STRING", {"default": "hi", "multiline": True}]
    assert info["input"]["hidden"] == {"UNIQUE_ID": "UNIQUE_ID", "PROMPT": "PROMPT"}
    assert info["output"] == ["FLOAT", "STRING"] and info["output_name"] == ["scaled", "label_out"]
    assert registry.get("V3AsyncShow").output_node and registry.get("V3AsyncShow").is_async
    assert registry.get("V3AsyncShow").input("value").type == "*"
    scale = pack.Scale
    assert scale.RETURN_TYPES == ("FLOAT", "STRING") and scale.FUNCTION == "EXECUTE_NORMALIZED"
    assert set(scale.INPUT_TYPES()["required"]) == {"value", "times", "mode"}
    assert pack.Gate().EXECUTE_NORMALIZED(open=True, value=3.0) == {"result": (3.0,)}


def test_sync_and_async_nodes_run_with_hidden_values_progress_and_ui(v3: Any) -> None:
    registry, pack, _ = v3
    events: list[Any] = []
    outcome = run(
        registry,
        {
            "1": {"class_type": "V3Scale", "inputs": {"value": 1.5, "times": 4, "mode": "mul", "label": "x"}},
            "2": {"class_type": "V3AsyncShow", "inputs": {"value": ["1", 1]}},
        },
        events,
    )
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["2"] == {"text": ("x:6.0",)}
    assert pack.SEEN["hidden"] == ("1", ["1", "2"], None)
    progress = [(e.node, e.value, e.max, e.preview is not None) for e in events if isinstance(e, NodeProgress)]
    assert progress == [("1", 1, 2, False), ("2", 3, 3, True), ("elsewhere", 1, 1, False)]
    [preview] = [e.preview for e in events if isinstance(e, NodeProgress) and e.preview is not None]
    assert preview.format == "JPEG" and preview.data[:2] == b"\xff\xd8"


def test_validate_inputs_and_fingerprint_inputs(v3: Any) -> None:
    registry, pack, _ = v3
    prompt = {
        "1": {"class_type": "V3Scale", "inputs": {"value": 1.0, "times": 7, "mode": "mul"}},
        "2": {"class_type": "V3AsyncShow", "inputs": {"value": ["1", 0]}},
    }
    checked = validate(parse_api(prompt), registry)
    assert not checked.ok and "seven is not allowed" in str(checked.to_response())
    prompt["1"]["inputs"]["times"] = 2
    executor = Executor(registry)
    first = run(registry, prompt, executor=executor)
    second = run(registry, prompt, executor=executor)
    assert first.status == second.status == "success" and second.outputs["2"] == {"text": ("2.0",)}
    assert pack.SEEN["runs"] == 1 and pack.SEEN["fingerprints"] >= 2
    pack.SEEN["stamp"] = 1
    assert run(registry, prompt, executor=executor).status == "success"
    assert pack.SEEN["runs"] == 2


def test_lazy_inputs_expansion_and_blocking(v3: Any) -> None:
    registry, pack, _ = v3
    lazy = run(
        registry,
        {
            "1": {"class_type": "V3Expensive", "inputs": {}},
            "2": {"class_type": "V3Doubled", "inputs": {"value": 2.5}},
            "3": {"class_type": "V3Lazy", "inputs": {"first": False, "a": ["1", 0], "b": ["2", 0]}},
            "4": {"class_type": "V3AsyncShow", "inputs": {"value": ["3", 0]}},
        },
    )
    assert lazy.status == "success", lazy.error
    assert lazy.outputs["4"] == {"text": ("5.0",)} and "expensive" not in pack.SEEN
    events: list[Any] = []
    blocked = run(
        registry,
        {
            "1": {"class_type": "V3Gate", "inputs": {"open": False, "value": 1.0}},
            "2": {"class_type": "V3AsyncShow", "inputs": {"value": ["1", 0]}},
        },
        events,
    )
    assert blocked.status == "success" and "2" not in blocked.outputs
    assert any(isinstance(e, NodeWarning) and "gate closed" in e.message for e in events)


def test_ui_preview_image_writes_to_the_temp_folder(v3: Any, tmp_path: Path) -> None:
    registry, _, _ = v3
    events: list[Any] = []
    outcome = run(registry, {"1": {"class_type": "V3Picture", "inputs": {}}}, events)
    assert outcome.status == "success", outcome.error
    images = outcome.outputs["1"]["images"]
    assert len(images) == 2 and {i["type"] for i in images} == {"temp"}
    assert all((tmp_path / "loom" / "temp" / i["subfolder"] / i["filename"]).is_file() for i in images)
    assert any(isinstance(e, NodeExecuted) for e in events)


def test_set_progress_outside_a_node_says_so(v3: Any) -> None:
    from comfy_api.latest import ComfyAPISync

    with pytest.raises(RuntimeError, match="called outside one"):
        ComfyAPISync().execution.set_progress(1, 2)


def test_v3_class_in_node_class_mappings_and_the_versioned_aliases(tmp_path: Path) -> None:
    folders = Folders.under(tmp_path / "loom")
    registry = NodeRegistry()
    compat.install(compat.Host(folders, registry))
    try:
        from comfy_api import latest, v0_0_1, v0_0_2, v0_0_3
        from comfy_api.latest import _io

        assert v0_0_2.io is latest.io and v0_0_3.ComfyExtension is latest.ComfyExtension and v0_0_1.ui is latest.ui
        assert _io.ComfyNode is latest.io.ComfyNode
        root = tmp_path / "custom_nodes"
        root.mkdir()
        (root / "mapped.py").write_text(
            "from comfy_api.latest import io\n"
            "class Node(io.ComfyNode):\n"
            "    @classmethod\n"
            "    def define_schema(cls):\n"
            "        return io.Schema(node_id='Ignored', inputs=[io.Int.Input('n')], outputs=[io.Int.Output()])\n"
            "    @classmethod\n"
            "    def execute(cls, n):\n"
            "        return io.NodeOutput(n + 1)\n"
            "NODE_CLASS_MAPPINGS = {'MappedV3': Node}\n"
        )
        [summary] = load_packs(registry, [root])
        assert summary.nodes == ("MappedV3",)
        assert registry.get("MappedV3").invoke({"n": 1}) == {"result": (2,)}
    finally:
        compat.uninstall()
