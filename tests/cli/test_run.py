from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli.commands import COMMANDS
from cli.run import ProgressPrinter, run_workflow
from engine.context import NodeContext
from engine.environment import NodeEnvironment
from engine.events import NodeText
from engine.folders import Folders
from engine.native import Int, Socket, String, node
from engine.registry import NodeRegistry
from engine.workflow import Link
from formats.problems import WorkflowFileError
from formats.workflow_files import load_workflow_file

ROOT = Path(__file__).resolve().parents[2]


@node(outputs=["INT"])
def Number(value: int = Int(1, min=0, max=10)) -> int:
    return value


@node(output_node=True)
def WriteText(a: int = Socket("INT"), name: str = String("out.txt"), *, ctx: NodeContext) -> dict:
    assert ctx.env is not None
    folders = ctx.env.folders
    for step in range(4):
        ctx.progress(step + 1, 4)
    if a == 7:
        raise RuntimeError("seven is not allowed")
    (folders.output / name).write_text(str(a))
    return {"ui": {"files": [{"filename": name, "subfolder": "", "type": "output"}]}}


def registry() -> NodeRegistry:
    reg = NodeRegistry()
    reg.add_all([Number, WriteText])
    return reg


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(data))
    return path


WORKFLOW = {
    "1": {"class_type": "Number", "inputs": {"value": 3}, "_meta": {"title": "count"}},
    "2": {"class_type": "WriteText", "inputs": {"a": ["1", 0], "name": "n.txt"}},
}


def test_run_registers_its_command() -> None:
    assert "run" in COMMANDS


def test_runs_a_workflow_and_says_where_outputs_went(tmp_path: Path) -> None:
    folders = Folders.under(tmp_path)
    folders.ensure()
    wf = load_workflow_file(write(tmp_path, WORKFLOW), registry(), overrides=["count.value=5"])
    out, err = io.StringIO(), io.StringIO()
    assert run_workflow(wf, registry(), NodeEnvironment(folders), folders=folders, out=out, err=err) == 0
    assert (folders.output / "n.txt").read_text() == "5"
    text = out.getvalue()
    assert "[1] 1 Number" in text and "2 WriteText: 4/4" in text
    assert str(folders.output / "n.txt") in text and "2 nodes executed" in text


def test_validation_errors_are_printed_per_node(tmp_path: Path) -> None:
    wf = load_workflow_file(write(tmp_path, WORKFLOW), registry(), overrides=["1.value=50"])
    err = io.StringIO()
    assert run_workflow(wf, registry(), out=io.StringIO(), err=err) == 1
    assert "node 1 (count) [Number]" in err.getvalue() and "value_bigger_than_max" in err.getvalue()


def test_a_failing_node_exits_non_zero(tmp_path: Path) -> None:
    folders = Folders.under(tmp_path)
    folders.ensure()
    wf = load_workflow_file(write(tmp_path, WORKFLOW), registry(), overrides=["1.value=7"])
    err = io.StringIO()
    assert run_workflow(wf, registry(), NodeEnvironment(folders), out=io.StringIO(), err=err) == 1
    assert "node 2 (WriteText) failed: RuntimeError: seven is not allowed" in err.getvalue()


def test_overrides_parse_json_and_links(tmp_path: Path) -> None:
    path = write(tmp_path, WORKFLOW)
    wf = load_workflow_file(path, registry(), overrides=["2.name=plain text", 'count.value=["1", 0]', "2.a=4"])
    assert wf["2"].inputs["name"] == "plain text" and wf["2"].inputs["a"] == 4
    assert wf["1"].inputs["value"] == Link("1", 0)
    with pytest.raises(WorkflowFileError, match="no node"):
        load_workflow_file(path, registry(), overrides=["nope.value=1"])
    with pytest.raises(WorkflowFileError, match=r"NODE\.INPUT=VALUE"):
        load_workflow_file(path, registry(), overrides=["value"])


def test_subprocess_exit_codes(tmp_path: Path) -> None:
    path = write(tmp_path, {"1": {"class_type": "NoSuchNode", "inputs": {}}})
    proc = subprocess.run(
        [sys.executable, "main.py", "run", str(path), "--base-directory", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "node 1: unknown node type 'NoSuchNode'" in proc.stderr
    missing = subprocess.run(
        [sys.executable, "main.py", "run", str(tmp_path / "absent.json"), "--base-directory", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "absent.json" in missing.stderr


def test_runs_a_canvas_file_with_overrides(tmp_path: Path) -> None:
    from formats.canvas_export import api_to_canvas

    folders = Folders.under(tmp_path)
    folders.ensure()
    path = tmp_path / "canvas.json"
    path.write_text(json.dumps(api_to_canvas(WORKFLOW, registry())))
    wf = load_workflow_file(path, registry(), overrides=["count.value=6"])
    assert (
        run_workflow(wf, registry(), NodeEnvironment(folders), folders=folders, out=io.StringIO(), err=io.StringIO())
        == 0
    )
    assert (folders.output / "n.txt").read_text() == "6"


def test_progress_printer_shows_node_text() -> None:
    out = io.StringIO()
    ProgressPrinter(out, tty=False)(NodeText("p", "3", "step 2: denoising"))
    assert out.getvalue() == "  node 3: step 2: denoising\n"
