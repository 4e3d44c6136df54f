"""Loading node packs from custom_nodes folders: good packs register, broken ones are reported and skipped."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import compat
from engine.folders import Folders
from engine.packs import PackSummary, discover, format_summary, load_packs
from engine.registry import NodeRegistry

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
        ("{'wanted': {}}", "unknown sections"),
        ("{'required': {'x': ('INT', 'not options')}}", "options must be a dict"),
    ],
)
def test_bad_input_types_fail_the_pack_naming_the_node_and_register_nothing(
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
    assert summary.status == "failed" and summary.name == "shapes"
    assert summary.error.startswith("SpecError") and "ShapesBad" in summary.error and detail in summary.error
    assert "ShapesGood" not in registry


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
    write(roots, {"deep/__init__.py": "import comfy.sd\n"})
    [summary] = load_packs(NodeRegistry(), [roots])
    assert summary.status == "failed"
    assert "Loom's compatibility layer does not provide comfy.sd" in summary.error


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
