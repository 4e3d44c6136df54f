"""The shims import under the ecosystem's names, without torch, and refuse anything deeper by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import compat
from engine.protocol import spec_from_class

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("statement", "missing"),
    [
        ("import comfy.no_such_module", "comfy.no_such_module"),
        ("from comfy import no_such_module", "comfy.no_such_module"),
        ("import comfy_extras.nodes_no_such", "comfy_extras.nodes_no_such"),
        ("import comfy.utils; comfy.utils.no_such_function", "comfy.utils.no_such_function"),
        ("from comfy.utils import no_such_function", "comfy.utils.no_such_function"),
        ("from comfy.comfy_types import Whatever", "comfy.comfy_types.Whatever"),
        ("import comfy_execution.graph as g; g.NoSuchThing", "comfy_execution.graph.NoSuchThing"),
    ],
)
def test_what_loom_lacks_fails_naming_it_without_a_pip_hint(host: compat.Host, statement: str, missing: str) -> None:
    with pytest.raises(ImportError if "import" in statement.split(";")[-1] else AttributeError) as caught:
        exec(statement, {})
    assert str(caught.value).startswith(f"Loom does not provide {missing} ")
    assert "pip" not in str(caught.value)


def test_hasattr_probes_answer_false(host: compat.Host) -> None:
    import comfy.utils

    assert not hasattr(comfy.utils, "no_such_function")
    assert getattr(comfy.utils, "no_such_function", "fallback") == "fallback"


def test_importing_the_shims_does_not_import_torch() -> None:
    code = (
        "import sys, compat; from engine.folders import Folders; from pathlib import Path; import tempfile\n"
        "compat.install(compat.Host(Folders.under(Path(tempfile.mkdtemp()))))\n"
        "import folder_paths, comfy.utils, comfy.model_management, comfy.comfy_types.node_typing\n"
        "import comfy_execution.graph_utils, comfy_execution.graph, compat.nodes, compat.server\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_uninstall_leaves_nothing_behind(host: compat.Host) -> None:
    import comfy.utils  # noqa: F401

    compat.uninstall()
    assert not compat.installed()
    assert not [name for name in sys.modules if name.partition(".")[0] in compat.PROVIDED]
    with pytest.raises(ModuleNotFoundError):
        exec("import folder_paths", {})


def test_unbound_shims_say_so() -> None:
    from compat import folder_paths

    with pytest.raises(RuntimeError, match="before Loom bound"):
        folder_paths.get_input_directory()


def test_comfy_types_make_valid_protocol_classes(host: compat.Host) -> None:
    from comfy.comfy_types import IO, CheckLazyMixin, ComfyNodeABC, InputTypeDict

    class Pick(CheckLazyMixin, ComfyNodeABC):
        RETURN_TYPES = (IO.IMAGE,)
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls) -> InputTypeDict:
            return {"required": {"a": (IO.IMAGE, {"lazy": True}), "n": (IO.INT, {"default": 1})}}

        def run(self, a: object, n: int) -> tuple[object]:
            return (a,)

    spec = spec_from_class("Pick", Pick)
    assert spec.outputs[0].type == "IMAGE" and spec.input("a").lazy and spec.check_lazy is not None
    assert spec.check_lazy({"a": None, "n": 1}) == ["a"] and spec.check_lazy({"a": 1, "n": 1}) == []
    assert IO.ANY == "*" and IO.NUMBER == "FLOAT,INT"


def test_execution_blocker_is_the_engines(host: compat.Host) -> None:
    from comfy_execution.graph import ExecutionBlocker

    from engine.blocker import ExecutionBlocker as EngineBlocker

    assert ExecutionBlocker is EngineBlocker
