"""Loading node packs from custom_nodes folders: good packs register, broken ones are reported and skipped."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import compat
from engine.context import NodeContext, RunControl
from engine.events import NodeProgress, discard
from engine.executor import Executor, RunOutcome
from engine.folders import Folders
from engine.packs import PackSummary, discover, format_summary, load_packs
from engine.registry import NodeRegistry
from engine.validate import validate
from engine.workflow import parse_api

PROTOCOL_NODE = """
class {name}:
    CATEGORY = "test"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{"x": ("INT", {{"default": 1, "min": 0, "max": 10}})}}}}

    def run(self, x):
        return (x + {offset},)
"""


def write(folder: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder


def protocol_pack(name: str, class_type: str, offset: int = 0) -> dict[str, str]:
    return {
        f"{name}/__init__.py": PROTOCOL_NODE.format(name=class_type, offset=offset)
        + f"\nNODE_CLASS_MAPPINGS = {{'{class_type}': {class_type}}}\n"
    }


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    root = tmp_path / "custom_nodes"
    root.mkdir()
    return root


@pytest.fixture
def shims(tmp_path: Path) -> Iterator[compat.Host]:
    folders = Folders.under(tmp_path / "loom")
    folders.ensure()
    yield compat.install(compat.Host(folders, NodeRegistry()))
    compat.uninstall()


def by_name(summaries: list[PackSummary]) -> dict[str, PackSummary]:
    return {s.name: s for s in summaries}


def test_package_pack_with_relative_imports_native_and_protocol_nodes_loads(roots: Path) -> None:
    write(
        roots,
        {
            "good_pack/__init__.py": """
                from .protocol import Adder
                from .native import Doubler
                NODE_CLASS_MAPPINGS = {"GoodAdder": Adder}
                NODE_DISPLAY_NAME_MAPPINGS = {"GoodAdder": "Good Adder"}
            """,
            "good_pack/protocol.py": PROTOCOL_NODE.format(name="Adder", offset=5),
            "good_pack/native.py": """
                from engine.native import node, Out
                @node(category="test", outputs=[Out("INT", "doubled")])
                def Doubler(x: int = 3) -> int:
                    return x * 2
            """,
        },
    )
    registry = NodeRegistry()
    [summary] = load_packs(registry, [roots])
    assert summary.status == "ok", summary.error
    assert set(summary.nodes) == {"GoodAdder", "Doubler"}
    assert summary.module == "custom_nodes.good_pack"
    adder = registry.get("GoodAdder")
    assert adder is not None and adder.display_name == "Good Adder"
    assert adder.python_module == "custom_nodes.good_pack" and adder.pack == "good_pack"
    assert registry.source("Doubler") == "good_pack"
    assert adder.invoke({"x": 2}) == (7,)
    assert registry.get("Doubler").invoke({"x": 4}) == 8


def test_single_module_pack_loads(roots: Path) -> None:
    write(roots, {"solo.py": PROTOCOL_NODE.format(name="Solo", offset=1) + "\nNODE_CLASS_MAPPINGS = {'Solo': Solo}\n"})
    registry = NodeRegistry()
    [summary] = load_packs(registry, [roots])
    assert (summary.name, summary.status, summary.nodes) == ("solo", "ok", ("Solo",))
    assert registry.get("Solo").invoke({"x": 1}) == (2,)


@pytest.mark.parametrize(
    ("source", "error_type", "detail"),
    [
        ("def broken(:\n    pass\n", "SyntaxError", "__init__.py"),
        ("import loom_no_such_dependency_xyz\n", "ModuleNotFoundError", "loom_no_such_dependency_xyz"),
        ("raise RuntimeError('pack exploded at import')\n", "RuntimeError", "pack exploded at import"),
        ("import sys\nsys.exit(3)\n", "SystemExit", "3"),
        ("NODE_CLASS_MAPPINGS = ['not', 'a', 'dict']\n", "SpecError", "NODE_CLASS_MAPPINGS must be a dict"),
    ],
)
def test_failing_pack_is_reported_and_loading_continues(roots: Path, source: str, error_type: str, detail: str) -> None:
    write(roots, {"a_broken/__init__.py": source, **protocol_pack("b_fine", "FineNode")})
    registry = NodeRegistry()
    packs = by_name(load_packs(registry, [roots]))
    broken = packs["a_broken"]
    assert broken.status == "failed"
    assert broken.error is not None and broken.error.startswith(error_type) and detail in broken.error
    assert broken.traceback and error_type in broken.traceback
    assert packs["b_fine"].status == "ok" and "FineNode" in registry
    assert "custom_nodes.a_broken" not in sys.modules
    table = format_summary(list(packs.values()))
    assert "a_broken" in table and "FAILED" in table and error_type in table


def test_missing_dependency_points_at_the_requirements_file(roots: Path) -> None:
    write(roots, {"needy/__init__.py": "import loom_missing_dep_abc\n", "needy/requirements.txt": "abc\n"})
    [summary] = load_packs(NodeRegistry(), [roots])
    assert "pip install -r" in summary.error and str(roots / "needy" / "requirements.txt") in summary.error


@pytest.mark.parametrize(
    ("input_types", "detail"),
    [
        ("['x']", "INPUT_TYPES() must return a dict"),
        ("{'required': {'x': 5}}", "input 'x'"),
        ("{'required': ['x']}", "must be a dict"),
        ("1 / 0", "ZeroDivisionError"),
        ("{'required': {'x': ('INT', 'not options')}}", "options must be a dict"),
    ],
)
def test_a_bad_node_is_rejected_with_its_reason_and_the_pack_keeps_its_other_nodes(
    roots: Path, input_types: str, detail: str
) -> None:
    write(
        roots,
        {
            "shapes/__init__.py": f"""
                class Good:
                    RETURN_TYPES = ("INT",)
                    FUNCTION = "run"
                    @classmethod
                    def INPUT_TYPES(cls):
                        return {{"required": {{}}}}
                    def run(self):
                        return (1,)
                class Bad(Good):
                    @classmethod
                    def INPUT_TYPES(cls):
                        return {input_types}
                NODE_CLASS_MAPPINGS = {{"ShapesGood": Good, "ShapesBad": Bad}}
            """
        },
    )
    registry = NodeRegistry()
    [summary] = load_packs(registry, [roots])
    assert summary.status == "ok" and summary.nodes == ("ShapesGood",) and summary.declared == 2
    [rejected] = summary.rejected
    assert rejected.class_type == "ShapesBad" and detail in rejected.reason
    assert "ShapesGood" in registry and "ShapesBad" not in registry
    assert any(w.startswith("node 'ShapesBad' is rejected") and detail in w for w in summary.warnings)
    assert summary.to_json()["rejected"] == [{"class_type": "ShapesBad", "reason": rejected.reason}]
    table = format_summary([summary])
    assert "1 of 2" in table and "ShapesBad" in table


def test_name_clash_first_pack_by_folder_name_wins_and_is_reported(roots: Path) -> None:
    write(roots, {**protocol_pack("zeta", "Shared", offset=100), **protocol_pack("alpha", "Shared", offset=1)})
    registry = NodeRegistry()
    packs = by_name(load_packs(registry, [roots]))
    assert registry.source("Shared") == "alpha"
    assert registry.get("Shared").invoke({"x": 0}) == (1,)
    assert packs["alpha"].nodes == ("Shared",)
    assert packs["zeta"].status == "ok" and packs["zeta"].ignored == ("Shared",) and packs["zeta"].nodes == ()
    assert any("alpha defines it first" in w for w in packs["zeta"].warnings)
    assert [(c.class_type, c.kept, c.ignored) for c in registry.clashes] == [("Shared", "alpha", "zeta")]


class BuiltinNode:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {}}

    def run(self) -> tuple[int]:
        return (0,)


def test_builtin_node_keeps_its_name_over_a_pack(roots: Path) -> None:
    write(roots, protocol_pack("override", "Builtin"))
    registry = NodeRegistry()
    registry.add_protocol({"Builtin": BuiltinNode})
    [summary] = load_packs(registry, [roots])
    assert registry.source("Builtin") == "builtin" and summary.ignored == ("Builtin",)
    assert registry.get("Builtin").invoke({}) == (0,)


def test_disabled_packs_are_listed_and_not_imported(roots: Path, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    side_effect = f"open({str(marker)!r}, 'a').write('x')\n"
    write(
        roots,
        {
            "by_suffix.disabled/__init__.py": side_effect,
            "by_suffix_module.py.disabled": side_effect,
            "by_config/__init__.py": side_effect,
        },
    )
    packs = by_name(load_packs(NodeRegistry(), [roots], disabled={"by_config"}))
    assert {name: p.status for name, p in packs.items()} == {
        "by_suffix": "disabled",
        "by_suffix_module": "disabled",
        "by_config": "disabled",
    }
    assert not marker.exists()


def test_hidden_cache_and_non_python_entries_are_skipped(roots: Path) -> None:
    write(
        roots,
        {
            ".git/__init__.py": "raise RuntimeError",
            "__pycache__/x.py": "",
            "README.md": "hello",
            "notes.txt": "",
            "no_init_folder/module.py": "",
        },
    )
    summaries = load_packs(NodeRegistry(), [roots])
    assert [(s.name, s.status) for s in summaries] == [("no_init_folder", "failed")]
    assert "no __init__.py" in summaries[0].error


def test_order_is_sorted_by_folder_name_across_roots(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    write(first, {"b.py": "", "a/__init__.py": ""})
    write(second, {"0.py": "", "a.py": ""})
    entries = discover([first, second, first])
    assert [(e.name, e.path.parent.name) for e in entries] == [("a", "one"), ("b", "one"), ("0", "two"), ("a", "two")]
    summaries = load_packs(NodeRegistry(), [first, second])
    duplicate = summaries[-1]
    assert duplicate.status == "failed" and "already loaded" in duplicate.error


def test_slow_flag_uses_the_threshold(roots: Path) -> None:
    write(roots, {"quick.py": ""})
    [flagged] = load_packs(NodeRegistry(), [roots], slow_seconds=-1.0)
    [relaxed] = load_packs(NodeRegistry(), [roots], slow_seconds=1e9)
    assert flagged.slow and not relaxed.slow
    assert "SLOW" in format_summary([flagged]) and "SLOW" not in format_summary([relaxed])


def test_web_directory_is_resolved_or_warned_about(roots: Path) -> None:
    write(
        roots,
        {
            "webby/__init__.py": "WEB_DIRECTORY = './js'\n",
            "webby/js/ext.js": "console.log('hi')\n",
            "lost/__init__.py": "WEB_DIRECTORY = 'nowhere'\n",
        },
    )
    packs = by_name(load_packs(NodeRegistry(), [roots]))
    assert packs["webby"].web_directory == str((roots / "webby" / "js").resolve())
    assert packs["lost"].status == "ok" and packs["lost"].web_directory is None
    assert any("nowhere" in w for w in packs["lost"].warnings)


def test_a_pack_reloads_fresh_and_can_import_itself_by_folder_name(roots: Path) -> None:
    write(
        roots,
        {
            "selfish/__init__.py": "from selfish_helpers import VALUE\nNODE_CLASS_MAPPINGS = {}\n",
            "selfish_helpers.py": "VALUE = 1\n",
        },
    )
    packs = by_name(load_packs(NodeRegistry(), [roots]))
    assert packs["selfish"].status == "ok"
    first = sys.modules["custom_nodes.selfish"]
    load_packs(NodeRegistry(), [roots])
    assert sys.modules["custom_nodes.selfish"] is not first
    sys.modules.pop("selfish_helpers", None)


def test_summary_json_is_plain_data(roots: Path) -> None:
    write(roots, protocol_pack("jsonable", "JsonNode"))
    [summary] = load_packs(NodeRegistry(), [roots])
    data = summary.to_json()
    assert data["name"] == "jsonable" and data["nodes"] == ["JsonNode"] and data["status"] == "ok"
    assert isinstance(data["seconds"], float) and data["error"] is None


def test_pack_using_host_module_shims_loads(roots: Path, shims: compat.Host) -> None:
    (shims.folders.model_dirs("checkpoints")[0] / "tiny.safetensors").write_bytes(b"x")
    write(
        roots,
        {
            "shimmed/__init__.py": """
                import folder_paths
                import nodes_free_check
                from comfy.comfy_types import IO, ComfyNodeABC
                from comfy.utils import ProgressBar

                class PickModel(ComfyNodeABC):
                    RETURN_TYPES = (IO.STRING,)
                    FUNCTION = "run"
                    @classmethod
                    def INPUT_TYPES(cls):
                        return {"required": {"name": (folder_paths.get_filename_list("checkpoints"),)}}
                    def run(self, name):
                        ProgressBar(1).update(1)
                        return (folder_paths.get_full_path_or_raise("checkpoints", name),)

                NODE_CLASS_MAPPINGS = {"PickModel": PickModel}
            """,
            "nodes_free_check.py": "",
        },
    )
    registry = NodeRegistry()
    packs = by_name(load_packs(registry, [roots]))
    assert packs["shimmed"].status == "ok", packs["shimmed"].error
    spec = registry.get("PickModel")
    assert spec.input("name").choices == ("tiny.safetensors",)
    assert spec.invoke({"name": "tiny.safetensors"}) == (
        str(shims.folders.model_dirs("checkpoints")[0] / "tiny.safetensors"),
    )
    sys.modules.pop("nodes_free_check", None)


def test_pack_reaching_into_host_internals_fails_with_a_clear_message(roots: Path, shims: compat.Host) -> None:
    write(roots, {"deep/__init__.py": "import comfy.no_such_module\n"})
    [summary] = load_packs(NodeRegistry(), [roots])
    assert summary.status == "failed"
    assert "Loom does not provide comfy.no_such_module" in summary.error


def test_example_pack_loads(shims: compat.Host) -> None:
    registry = NodeRegistry()
    [summary] = load_packs(registry, [Path(__file__).resolve().parents[2] / "custom_nodes"], disabled=())
    assert summary.name == "example_pack" and summary.status == "ok", summary.error
    assert {"ExampleSplitText", "ExampleJoinText", "ExampleTextSwitch", "ExampleShowText"} <= set(summary.nodes)
    assert {"ExampleRepeatText", "ExampleBrightness"} <= set(summary.nodes)
    assert summary.web_directory is not None and Path(summary.web_directory, "example.js").is_file()
    split = registry.get("ExampleSplitText")
    assert [o.is_list for o in split.outputs] == [True, False]
    assert registry.get("ExampleTextSwitch").has_lazy_inputs


# ---- End to end through the engine's executor -------------------------------------------------------------------

E2E_PACK = """
import folder_paths
from comfy.comfy_types import IO
from comfy.utils import ProgressBar
from comfy_execution.graph import ExecutionBlocker
from comfy_execution.graph_utils import GraphBuilder

from engine.context import NodeContext
from engine.native import Int, Out, node

CALLS = {}


def count(name):
    CALLS[name] = CALLS.get(name, 0) + 1


class Lines:
    RETURN_TYPES = (IO.STRING,)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": (IO.STRING, {"default": "a b c"})}}

    def run(self, text):
        count("Lines")
        parts = text.split()
        bar = ProgressBar(len(parts))
        for _ in parts:
            bar.update(1)
        return (parts,)


class Upper:
    RETURN_TYPES = (IO.STRING,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": (IO.STRING, {"forceInput": True})}}

    def run(self, text):
        count("Upper")
        return (text.upper(),)


class Join:
    RETURN_TYPES = (IO.STRING,)
    FUNCTION = "run"
    INPUT_IS_LIST = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"texts": (IO.STRING, {"forceInput": True}), "sep": (IO.STRING, {"default": ","})}}

    def run(self, texts, sep):
        count("Join")
        return (sep[0].join(texts),)


class Show:
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": (IO.ANY, {"forceInput": True})}}

    def run(self, text):
        count("Show")
        return {"ui": {"text": [text]}}


class Switch:
    RETURN_TYPES = (IO.STRING,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "first": ("BOOLEAN", {"default": True}),
            "a": (IO.STRING, {"lazy": True, "forceInput": True}),
            "b": (IO.STRING, {"lazy": True, "forceInput": True}),
        }}

    def check_lazy_status(self, first, a=None, b=None):
        name = "a" if first else "b"
        return [name] if (a if first else b) is None else []

    def run(self, first, a=None, b=None):
        return (a if first else b,)


class Expensive:
    RETURN_TYPES = (IO.STRING,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def run(self):
        count("Expensive")
        return ("expensive",)


class Stamp:
    RETURN_TYPES = (IO.STRING,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"path": (IO.STRING, {"default": ""})}}

    @classmethod
    def IS_CHANGED(cls, path):
        with open(path) as f:
            return f.read()

    def run(self, path):
        count("Stamp")
        with open(path) as f:
            return (f.read(),)


class Even:
    RETURN_TYPES = (IO.INT,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"n": (IO.INT, {"default": 2})}}

    @classmethod
    def VALIDATE_INPUTS(cls, n):
        return True if n % 2 == 0 else f"n must be even, got {n}"

    def run(self, n):
        return (n,)


class Fails:
    RETURN_TYPES = (IO.STRING,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": (IO.STRING, {"default": "x"})}}

    def run(self, text):
        raise ValueError("pack node failed on " + text)


class Expand:
    RETURN_TYPES = (IO.STRING,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": (IO.STRING, {"default": "abc"})}}

    def run(self, text):
        graph = GraphBuilder()
        lines = graph.node("E2ELines", text=text)
        upper = graph.node("E2EUpper", text=lines.out(0))
        joined = graph.node("E2EJoin", texts=upper.out(0), sep="-")
        return {"result": (joined.out(0),), "expand": graph.finalize()}


class Gate:
    RETURN_TYPES = (IO.STRING,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"open": ("BOOLEAN", {"default": False}), "text": (IO.STRING, {"default": "t"})}}

    def run(self, open, text):
        return (text if open else ExecutionBlocker(None),)


class ModelPath:
    RETURN_TYPES = (IO.STRING,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": (folder_paths.get_filename_list("checkpoints"),)}}

    def run(self, name):
        return (folder_paths.get_full_path_or_raise("checkpoints", name),)


@node(name="E2ENative", outputs=[Out("STRING", "text")])
def native_repeat(ctx: NodeContext, text: str = "ab", times: int = Int(2, min=1)) -> str:
    ctx.progress(1, 1)
    return text * times


NODE_CLASS_MAPPINGS = {
    "E2ELines": Lines, "E2EUpper": Upper, "E2EJoin": Join, "E2EShow": Show, "E2ESwitch": Switch,
    "E2EExpensive": Expensive, "E2EStamp": Stamp, "E2EEven": Even, "E2EFails": Fails, "E2EExpand": Expand,
    "E2EGate": Gate, "E2EModelPath": ModelPath,
}
"""


@pytest.fixture
def e2e(roots: Path, shims: compat.Host) -> tuple[NodeRegistry, Any]:
    write(roots, {"e2e/__init__.py": E2E_PACK})
    registry = shims.registry
    [summary] = load_packs(registry, [roots])
    assert summary.status == "ok", summary.traceback
    return registry, sys.modules["custom_nodes.e2e"]


def run_prompt(
    registry: NodeRegistry, prompt: dict[str, Any], executor: Executor | None = None, events: list[Any] | None = None
) -> RunOutcome:
    workflow = parse_api(prompt)
    checked = validate(workflow, registry)
    assert checked.ok, checked.to_response()
    executor = executor or Executor(registry)
    emit = events.append if events is not None else discard
    return executor.run(workflow, outputs=checked.outputs, prompt_id="p1", emit=emit)


def show(source: str) -> dict[str, Any]:
    return {"class_type": "E2EShow", "inputs": {"text": [source, 0]}}


def test_list_output_fans_out_and_input_is_list_collects(e2e: tuple[NodeRegistry, Any]) -> None:
    registry, pack = e2e
    events: list[Any] = []
    outcome = run_prompt(
        registry,
        {
            "1": {"class_type": "E2ELines", "inputs": {"text": "a b c"}},
            "2": {"class_type": "E2EUpper", "inputs": {"text": ["1", 0]}},
            "3": {"class_type": "E2EJoin", "inputs": {"texts": ["2", 0], "sep": "+"}},
            "4": show("3"),
        },
        events=events,
    )
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["4"] == {"text": ["A+B+C"]}
    assert pack.CALLS["Upper"] == 3 and pack.CALLS["Join"] == 1
    progress = [(e.node, e.value, e.max) for e in events if isinstance(e, NodeProgress)]
    assert progress == [("1", 1, 3), ("1", 2, 3), ("1", 3, 3)]


def test_lazy_inputs_run_only_the_branch_asked_for(e2e: tuple[NodeRegistry, Any]) -> None:
    registry, pack = e2e
    outcome = run_prompt(
        registry,
        {
            "1": {"class_type": "E2ENative", "inputs": {"text": "x", "times": 3}},
            "2": {"class_type": "E2EExpensive", "inputs": {}},
            "3": {"class_type": "E2ESwitch", "inputs": {"first": True, "a": ["1", 0], "b": ["2", 0]}},
            "4": show("3"),
        },
    )
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["4"] == {"text": ["xxx"]}
    assert "Expensive" not in pack.CALLS


def test_is_changed_decides_whether_a_cached_result_is_reused(e2e: tuple[NodeRegistry, Any], tmp_path: Path) -> None:
    registry, pack = e2e
    marker = tmp_path / "stamp.txt"
    marker.write_text("one")
    prompt = {"1": {"class_type": "E2EStamp", "inputs": {"path": str(marker)}}, "2": show("1")}
    executor = Executor(registry)
    assert run_prompt(registry, prompt, executor).outputs["2"] == {"text": ["one"]}
    assert run_prompt(registry, prompt, executor).outputs["2"] == {"text": ["one"]}
    assert pack.CALLS["Stamp"] == 1
    marker.write_text("two")
    assert run_prompt(registry, prompt, executor).outputs["2"] == {"text": ["two"]}
    assert pack.CALLS["Stamp"] == 2


def test_validate_inputs_rejects_with_the_packs_message(e2e: tuple[NodeRegistry, Any]) -> None:
    registry, _ = e2e
    checked = validate(parse_api({"1": {"class_type": "E2EEven", "inputs": {"n": 3}}, "2": show("1")}), registry)
    assert not checked.ok
    [error] = checked.node_errors["1"].errors
    assert error.type == "custom_validation_failed" and "n must be even, got 3" in error.details + error.message
    assert (
        run_prompt(registry, {"1": {"class_type": "E2EEven", "inputs": {"n": 4}}, "2": show("1")}).status == "success"
    )


def test_a_failing_pack_node_is_a_node_error_and_the_executor_goes_on(e2e: tuple[NodeRegistry, Any]) -> None:
    registry, _ = e2e
    executor = Executor(registry)
    failed = run_prompt(registry, {"1": {"class_type": "E2EFails", "inputs": {"text": "y"}}, "2": show("1")}, executor)
    assert failed.status == "error" and failed.error is not None
    assert (failed.error.node_id, failed.error.node_type) == ("1", "E2EFails")
    assert "pack node failed on y" in failed.error.exception_message and failed.error.exception_type.endswith(
        "ValueError"
    )
    fine = run_prompt(
        registry, {"1": {"class_type": "E2ENative", "inputs": {"text": "z", "times": 1}}, "2": show("1")}, executor
    )
    assert fine.status == "success" and fine.outputs["2"] == {"text": ["z"]}


def test_graph_builder_expansion_and_execution_blocker(e2e: tuple[NodeRegistry, Any]) -> None:
    registry, _ = e2e
    expanded = run_prompt(registry, {"1": {"class_type": "E2EExpand", "inputs": {"text": "a b"}}, "2": show("1")})
    assert expanded.status == "success", expanded.error
    assert expanded.outputs["2"] == {"text": ["A-B"]}
    blocked = run_prompt(
        registry, {"1": {"class_type": "E2EGate", "inputs": {"open": False, "text": ""}}, "2": show("1")}
    )
    assert blocked.status == "success" and "2" not in blocked.outputs
    opened = run_prompt(
        registry, {"1": {"class_type": "E2EGate", "inputs": {"open": True, "text": "go"}}, "2": show("1")}
    )
    assert opened.outputs["2"] == {"text": ["go"]}


def test_folder_paths_shim_inside_a_running_pack(e2e: tuple[NodeRegistry, Any], shims: compat.Host) -> None:
    registry, _ = e2e
    model = shims.folders.model_dirs("checkpoints")[0] / "tiny.safetensors"
    model.write_bytes(b"x")
    outcome = run_prompt(
        registry, {"1": {"class_type": "E2EModelPath", "inputs": {"name": "tiny.safetensors"}}, "2": show("1")}
    )
    assert outcome.outputs["2"] == {"text": [str(model)]}


EXAMPLE_PACKS = Path(__file__).resolve().parents[2] / "custom_nodes"


def test_example_pack_runs_end_to_end(shims: compat.Host) -> None:
    registry = shims.registry
    [summary] = load_packs(registry, [EXAMPLE_PACKS])
    assert summary.status == "ok", summary.error
    events: list[Any] = []
    joined = run_prompt(
        registry,
        {
            "1": {"class_type": "ExampleSplitText", "inputs": {"text": "x\ny\n\nz", "skip_empty": True}},
            "2": {"class_type": "ExampleRepeatText", "inputs": {"text": ["1", 0], "times": 2, "separator": ""}},
            "3": {"class_type": "ExampleJoinText", "inputs": {"texts": ["2", 0], "separator": "|"}},
            "4": {"class_type": "ExampleShowText", "inputs": {"text": ["3", 0]}},
        },
        events=events,
    )
    assert joined.status == "success", joined.error
    assert joined.outputs["4"] == {"text": ["xx|yy|zz"]}
    assert [(e.value, e.max) for e in events if isinstance(e, NodeProgress) and e.node == "1"] == [
        (1, 3),
        (2, 3),
        (3, 3),
    ]
    switched = run_prompt(
        registry,
        {
            "1": {"class_type": "ExampleRepeatText", "inputs": {"text": "a", "times": 1, "separator": ""}},
            "2": {"class_type": "ExampleRepeatText", "inputs": {"text": "b", "times": 1, "separator": ""}},
            "3": {
                "class_type": "ExampleTextSwitch",
                "inputs": {"use_first": False, "first": ["1", 0], "second": ["2", 0]},
            },
            "4": {"class_type": "ExampleShowText", "inputs": {"text": ["3", 0]}},
        },
    )
    assert switched.outputs["4"] == {"text": ["b"]} and "1" not in switched.executed
    bad = validate(
        parse_api(
            {
                "1": {"class_type": "ExampleSplitText", "inputs": {"text": "a", "skip_empty": True}},
                "2": {"class_type": "ExampleJoinText", "inputs": {"texts": ["1", 0], "separator": "a\nb"}},
                "3": {"class_type": "ExampleShowText", "inputs": {"text": ["2", 0]}},
            }
        ),
        registry,
    )
    assert not bad.ok and "separator must be on one line" in str(bad.to_response())


def test_example_brightness_scales_each_image_with_progress(shims: compat.Host) -> None:
    torch = pytest.importorskip("torch")
    registry = shims.registry
    load_packs(registry, [EXAMPLE_PACKS])
    events: list[Any] = []
    ctx = NodeContext("p", "9", "9", "ExampleBrightness", events.append, RunControl())
    image = torch.full((2, 4, 4, 3), 0.4)
    out = registry.get("ExampleBrightness").invoke({"image": image, "factor": 2.0, "__context__": ctx})
    assert out.shape == image.shape and torch.allclose(out, torch.full_like(image, 0.8))
    assert torch.allclose(
        registry.get("ExampleBrightness").invoke({"image": image, "factor": 4.0, "__context__": ctx}),
        torch.ones_like(image),
    )
    assert [(e.value, e.max) for e in events[:2]] == [(1, 2), (2, 2)]
