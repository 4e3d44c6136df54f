"""Output files never overwrite; input names resolve inside their folder only."""

from __future__ import annotations

import pytest

from engine.folders import UnsafePath
from nodes.files import OutputWriter, list_input_files, resolve_input
from tests.nodes.conftest import Env


def test_save_image_skips_a_name_taken_meanwhile(env: Env) -> None:
    writer = OutputWriter(env.folders.output, "output", "race")
    assert writer.write(b"a", "png")["filename"] == "race_00001_.png"
    (env.folders.output / "race_00002_.png").write_bytes(b"written by someone else")
    assert writer.write(b"b", "png")["filename"] == "race_00003_.png"
    assert (env.folders.output / "race_00002_.png").read_bytes() == b"written by someone else"


def test_writers_of_one_prefix_never_share_a_name(env: Env) -> None:
    first = OutputWriter(env.folders.output, "output", "same")
    second = OutputWriter(env.folders.output, "output", "same")
    names = {first.write(b"1", "png")["filename"], second.write(b"2", "png")["filename"]}
    names |= {first.write(b"3", "png")["filename"], second.write(b"4", "png")["filename"]}
    assert len(names) == 4
    assert sorted(p.read_bytes() for p in env.folders.output.iterdir()) == [b"1", b"2", b"3", b"4"]


def test_resolve_input_annotations_and_escapes(env: Env) -> None:
    (env.folders.input / "a.png").write_bytes(b"i")
    (env.folders.temp / "t.png").write_bytes(b"t")
    assert resolve_input(env.folders, "a.png").read_bytes() == b"i"
    assert resolve_input(env.folders, "t.png [temp]").read_bytes() == b"t"
    with pytest.raises(FileNotFoundError, match="output folder"):
        resolve_input(env.folders, "a.png [output]")
    with pytest.raises(UnsafePath):
        resolve_input(env.folders, "../loom/input/a.png")
    with pytest.raises(UnsafePath):
        resolve_input(env.folders, str(env.folders.input / "a.png"))


def test_list_input_files_without_an_environment_is_empty() -> None:
    assert list_input_files(None) == []
