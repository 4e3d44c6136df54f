"""Output files never overwrite; input names resolve inside their folder only."""

from __future__ import annotations

import time

import pytest

from engine.environment import NodeEnvironment
from engine.folders import UnsafePath
from nodes.files import OutputWriter, expand_prefix, list_input_files, resolve_input


def test_save_image_skips_a_name_taken_meanwhile(env: NodeEnvironment) -> None:
    writer = OutputWriter(env.folders.output, "output", "race")
    assert writer.write(b"a", "png")["filename"] == "race_00001_.png"
    (env.folders.output / "race_00002_.png").write_bytes(b"written by someone else")
    assert writer.write(b"b", "png")["filename"] == "race_00003_.png"
    assert (env.folders.output / "race_00002_.png").read_bytes() == b"written by someone else"


def test_writers_of_one_prefix_never_share_a_name(env: NodeEnvironment) -> None:
    first = OutputWriter(env.folders.output, "output", "same")
    second = OutputWriter(env.folders.output, "output", "same")
    names = {first.write(b"1", "png")["filename"], second.write(b"2", "png")["filename"]}
    names |= {first.write(b"3", "png")["filename"], second.write(b"4", "png")["filename"]}
    assert len(names) == 4
    assert sorted(p.read_bytes() for p in env.folders.output.iterdir()) == [b"1", b"2", b"3", b"4"]


def test_resolve_input_annotations_and_escapes(env: NodeEnvironment) -> None:
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


def test_expand_prefix_dates_sizes_and_widget_references() -> None:
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd/v1.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512}, "_meta": {"title": "Size"}},
        "6": {"class_type": "KSampler", "inputs": {"seed": 42, "model": ["4", 0]}},
    }
    year = time.strftime("%Y")
    assert expand_prefix("%date:yyyy%/x", prompt=prompt).startswith(f"{year}/x")
    assert expand_prefix("img_%width%x%height%", 640, 480) == "img_640x480"
    assert expand_prefix("%KSampler.seed%_%Size.width%_%4.ckpt_name%", prompt=prompt) == "42_512_sd_v1.safetensors"
    # Unknown names and links stay as written; %batch_num% is the writer's, per image.
    assert expand_prefix("%KSampler.model%_%nope%_%batch_num%", prompt=prompt) == "%KSampler.model%_%nope%_%batch_num%"


def test_writer_expands_the_prefix_before_confining_it(env: NodeEnvironment) -> None:
    prompt = {"1": {"class_type": "Note", "inputs": {"text": ".."}}}
    with pytest.raises(UnsafePath):
        OutputWriter(env.folders.output, "output", "%Note.text%/x", prompt=prompt)
