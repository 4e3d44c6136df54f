"""The validation rules through `main.py validate`, with the semantics test pack (tests/server/packs) loaded as a
pack from custom_nodes/: the command accepts a workflow exactly as POST /prompt does."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import compat
import nodes.image
from catalog.index import ModelIndex
from cli import build_parser
from cli.validate import validate_command
from engine.environment import NodeEnvironment
from engine.folders import Folders
from engine.packs import load_packs
from engine.registry import NodeRegistry
from runtime.build import Runtime
from runtime.settings import ROOT, RuntimeSettings
from tests.server.test_semantics import LINK_TYPES

PACK = ROOT / "tests" / "server" / "packs" / "semantics_pack"


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    folders = Folders.under(tmp_path)
    folders.ensure()
    shutil.copytree(PACK, folders.custom_nodes[0] / PACK.name)
    env = NodeEnvironment(folders)
    registry = NodeRegistry(env)
    registry.add_module(nodes.image)
    compat.install(compat.Host(folders, registry, env))
    try:
        assert [p.status for p in load_packs(registry, folders.custom_nodes, timeout=None)] == ["ok"]
        yield Runtime(RuntimeSettings(base_directory=tmp_path), folders, registry, env, ModelIndex(folders))
    finally:
        compat.uninstall()


def validate(runtime: Runtime, tmp_path: Path, prompt: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Any:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(prompt))
    code = validate_command(build_parser().parse_args(["validate", str(path)]), runtime)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_link_types_and_an_invalid_output_is_skipped(runtime: Runtime, tmp_path: Path, capsys: Any) -> None:
    code, out, err = validate(runtime, tmp_path, LINK_TYPES, capsys)
    assert code == 0 and "outputs 2, 3, 4" in out
    assert err.strip().splitlines() == [
        "skipped [return_type_mismatch]: node 5 (SemSinkD): input 'x' expects D but node 1 output 0 gives A,B"
    ]


def test_validator_rules_and_input_names(runtime: Runtime, tmp_path: Path, capsys: Any) -> None:
    prompt = {
        "1": {"class_type": "TestNumberAbsent", "inputs": {}},
    }
    code, _, err = validate(runtime, tmp_path, prompt, capsys)
    assert code == 1 and "unknown node type" in err
    prompt = {
        "1": {"class_type": "SemSource", "inputs": {}},
        "2": {"class_type": "SemValidated", "inputs": {"n": "40", "linked": ["1", 0], "choice": "b"}},
        "3": {"class_type": "SemKwargs", "inputs": {"f": 7, "c": "nope"}},
        "4": {"class_type": "SemRefuse", "inputs": {"x": "3"}},
        "5": {"class_type": "LoadImage", "inputs": {"image": "absent.png"}},
        "6": {"class_type": "SemShow", "inputs": {"value": ["5", 0]}},
    }
    code, out, err = validate(runtime, tmp_path, prompt, capsys)
    # 2 links A,B into INT: its validator takes input_types, so it (not the type check) judges, and it got n
    # converted, the link as None, its UNIQUE_ID; 3 passes; 4 and 5 fail, named by their input
    assert code == 0 and "outputs 3" in out
    lines = err.strip().splitlines()
    seen = "saw n=40 linked=None uid='2' input_types={'linked': 'A,B'}"
    assert f"skipped [custom_validation_failed]: node 2 (SemValidated): {seen}" in lines
    assert "skipped [custom_validation_failed]: node 4 (SemRefuse): never valid" in lines
    assert any(line.startswith("skipped [custom_validation_failed]: node 5 (LoadImage)") for line in lines)
    prompt = {k: v for k, v in prompt.items() if k in ("4", "5", "6")}
    code, _, err = validate(runtime, tmp_path, prompt, capsys)
    assert code == 1 and err.count("error [custom_validation_failed]") == 2


@pytest.mark.slow
def test_main_py_validate_loads_the_pack_and_drops_invalid_outputs(tmp_path: Path) -> None:
    shutil.copytree(PACK, tmp_path / "custom_nodes" / PACK.name)
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(LINK_TYPES))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "validate", str(workflow), "--base-directory", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "outputs 2, 3, 4" in proc.stdout and "skipped [return_type_mismatch]: node 5" in proc.stderr


def test_main_py_run_runs_the_converted_workflow(runtime: Runtime, capsys: Any) -> None:
    """`main.py run` accepts a workflow as the server does: the node gets the converted literals."""
    from cli.run import run_workflow
    from engine.workflow import parse_api

    workflow = parse_api({"1": {"class_type": "SemTyped", "inputs": {"i": "5", "f": 2, "s": 7, "b": "true"}}})
    assert run_workflow(workflow, runtime.registry, runtime.env, folders=runtime.folders) == 0
    out = capsys.readouterr().out
    assert "node 1: types: 'int'" in out and "node 1: types: 'float'" in out and "node 1: values: 2.0" in out
