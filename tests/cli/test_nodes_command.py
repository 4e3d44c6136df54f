"""`python main.py nodes` lists node types with their pack; the pack table goes to stderr at start."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import compat
from cli import main

PACK = """
class Greeter:
    CATEGORY = "demo"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": ("STRING", {"default": "you"})}}

    def run(self, name):
        return ("hello " + name,)

class Unreadable(Greeter):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": 42}}

print("greetings pack says hello at import")
NODE_CLASS_MAPPINGS = {"Greeter": Greeter, "Unreadable": Unreadable}
"""


@pytest.fixture
def base(tmp_path: Path) -> Iterator[Path]:
    packs = tmp_path / "custom_nodes"
    (packs / "greetings").mkdir(parents=True)
    (packs / "greetings" / "__init__.py").write_text(PACK)
    (packs / "broken.py").write_text("raise ValueError('nope')\n")
    yield tmp_path
    compat.uninstall()


def test_nodes_lists_pack_nodes_and_prints_the_summary(base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nodes", "--base-directory", str(base)]) == 0
    out, err = capsys.readouterr()
    assert any(line.split()[:2] == ["Greeter", "greetings"] for line in out.splitlines())
    assert "greetings" in err and "broken" in err and "FAILED" in err and "ValueError: nope" in err
    assert "pack greetings: 1 of 2 nodes; rejected: Unreadable (node 'Unreadable', input 'name':" in out
    assert "1 of 2" in err and "node 'Unreadable' is rejected" in err


def test_pack_prints_at_import_stay_off_the_json_output(base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nodes", "--base-directory", str(base), "--json"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert "greetings pack says hello at import" in err
    [greetings] = [p for p in data["packs"] if p["name"] == "greetings"]
    assert greetings["count"] == "1 of 2 nodes" and greetings["declared"] == 2
    assert [r["class_type"] for r in greetings["rejected"]] == ["Unreadable"]


def test_nodes_json_filters_by_pack_and_includes_summaries(base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nodes", "--base-directory", str(base), "--json", "--pack", "greetings"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [n["class_type"] for n in data["nodes"]] == ["Greeter"] and data["nodes"][0]["source"] == "greetings"
    assert {p["name"]: p["status"] for p in data["packs"]} == {"broken": "failed", "greetings": "ok"}


def test_disable_flags(base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nodes", "--base-directory", str(base), "--json", "--disable-pack", "greetings"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {p["name"]: p["status"] for p in data["packs"]} == {"broken": "failed", "greetings": "disabled"}
    assert main(["nodes", "--base-directory", str(base), "--json", "--disable-custom-nodes"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["packs"] == []
    assert listed["nodes"] and {n["source"] for n in listed["nodes"]} == {"builtin"}
