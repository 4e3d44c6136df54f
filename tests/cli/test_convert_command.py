"""`main.py convert` and `main.py validate`: output, files written, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.index import ModelIndex
from cli import build_parser
from cli.convert import convert_command
from cli.validate import validate_command
from engine.environment import NodeEnvironment
from engine.folders import Folders
from runtime.build import Runtime
from runtime.settings import ROOT, RuntimeSettings
from tests.formats.canvas_nodes import registry
from tests.formats.test_canvas import EXPECTED, cnode, pipeline

REG = registry()


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_convert_canvas_to_api_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["convert", str(write(tmp_path / "c.json", pipeline())), "--to", "api"])
    assert convert_command(args, REG) == 0
    assert json.loads(capsys.readouterr().out) == EXPECTED


def test_convert_api_to_canvas_into_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    argv = ["convert", str(write(tmp_path / "a.json", EXPECTED)), "--to", "canvas", "-o", str(out)]
    assert convert_command(build_parser().parse_args(argv), REG) == 0
    assert capsys.readouterr().out == ""
    assert {n["type"] for n in json.loads(out.read_text())["nodes"]} == {"Loader", "Encode", "Sample", "Scale", "Save"}


def test_canvas_round_trip_keeps_what_it_does_not_understand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    canvas = pipeline()
    canvas["extra"]["someExtension"] = {"keep": [1, 2]}
    canvas["nodes"][2]["properties"]["my.plugin"] = "value"
    canvas["nodes"][2]["color"] = "#223"
    args = build_parser().parse_args(["convert", str(write(tmp_path / "c.json", canvas)), "--to", "canvas"])
    assert convert_command(args, REG) == 0
    assert json.loads(capsys.readouterr().out) == canvas


def test_convert_reports_every_problem_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    canvas = pipeline()
    canvas["nodes"] += [cnode(40, "FancyUpscaler"), cnode(41, "MagicLoRA")]
    args = build_parser().parse_args(["convert", str(write(tmp_path / "c.json", canvas)), "--to", "api"])
    assert convert_command(args, REG) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "unknown node type 'FancyUpscaler'" in captured.err
    assert "unknown node type 'MagicLoRA'" in captured.err


def runtime(tmp_path: Path) -> Runtime:
    folders = Folders.under(tmp_path)
    settings = RuntimeSettings(base_directory=tmp_path)
    return Runtime(settings, folders, REG, NodeEnvironment(folders), ModelIndex(folders))


def test_validate_ok_and_with_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path / "good.json", pipeline())
    assert validate_command(build_parser().parse_args(["validate", str(good)]), runtime(tmp_path)) == 0
    assert "ok:" in capsys.readouterr().out

    canvas = pipeline()
    canvas["nodes"][0]["widgets_values"] = ["v1-5-pruned-emaonly.safetensors"]
    canvas["nodes"].append(cnode(40, "FancyUpscaler"))
    bad = write(tmp_path / "bad.json", canvas)
    assert validate_command(build_parser().parse_args(["validate", str(bad)]), runtime(tmp_path)) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert "[missing_node_type]" in err[0] and "node 40" in err[0]
    assert "[value_not_in_list]" in err[1] and "'v1-5-pruned-emaonly.safetensors'" in err[1]

    argv = [
        "validate",
        str(bad),
        "--model-map",
        "v1-5-pruned-emaonly.safetensors=tiny.safetensors",
        "--set",
        "Sample.seed=1",
    ]
    assert validate_command(build_parser().parse_args(argv), runtime(tmp_path)) == 1
    assert "[value_not_in_list]" not in capsys.readouterr().err


def test_main_py_exit_codes(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.json", {"1": {"class_type": "SurelyNotANode", "inputs": {}}})
    for command in (["convert", str(bad), "--to", "canvas"], ["validate", str(bad)]):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "main.py"), *command, "--base-directory", str(tmp_path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr
        assert "unknown node type 'SurelyNotANode'" in proc.stderr
        assert proc.stdout == ""


def test_validate_reports_the_validators_errors_per_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path / "good.json", pipeline())
    argv = ["validate", str(good), "--set", "Sample.steps=0", "--set", "Scale.factor=big"]
    assert validate_command(build_parser().parse_args(argv), runtime(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "[value_smaller_than_min]: node 3 (Sample)" in err
    assert "node 3 (Sample): node 3" not in err  # the node is named once
    assert "node 4 (Scale)" in err and "factor" in err


def test_convert_and_validate_say_which_outputs_a_muted_node_cuts_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    canvas = pipeline()
    next(n for n in canvas["nodes"] if n["id"] == 4)["mode"] = 2
    path = write(tmp_path / "muted.json", canvas)
    assert convert_command(build_parser().parse_args(["convert", str(path), "--to", "api"]), REG) == 0
    assert "note: output node 5 (Save) is left out: it depends on muted node 4 (Scale)" in capsys.readouterr().err
