"""Model names resolved across a whole workflow, with Loom's built-in loaders over model files made here."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from catalog.hashes import HashCache, sha256_file
from catalog.index import ModelIndex
from catalog.names import resolve_models
from engine.folders import Folders
from engine.registry import NodeRegistry
from nodes import register_builtin
from nodes.shared import node_environment


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Folders, NodeRegistry]:
    folders = Folders.under(tmp_path)
    folders.ensure()
    for folder, name, data in [
        ("checkpoints", "sdxl/sd_xl_base_1.0.safetensors", b"xl"),
        ("checkpoints", "a/twin.safetensors", b"twin one"),
        ("checkpoints", "b/twin.safetensors", b"twin two"),
        ("loras", "detail-tweaker.safetensors", b"lora"),
        ("upscale_models", "4x-UltraSharp.pth", b"esrgan"),
    ]:
        path = folders.model_dirs(folder)[0] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    registry = NodeRegistry(node_environment(folders))
    register_builtin(registry)
    return folders, registry


def _workflow(ckpt: str, lora: str = "detail-tweaker.safetensors", upscaler: str = "4x-UltraSharp.pth") -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {
            "class_type": "LoraLoader",
            "inputs": {
                "model": ["1", 0],
                "clip": ["1", 1],
                "lora_name": lora,
                "strength_model": 1.0,
                "strength_clip": 1.0,
            },
        },
        "3": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": upscaler}},
    }


def test_renames_are_applied_and_reported(setup: tuple[Folders, NodeRegistry]) -> None:
    _, registry = setup
    api = _workflow(
        "SDXL\\sd_xl_base_1.0.safetensors", lora="loras_old\\detail-tweaker.safetensors", upscaler="4x-UltraSharp"
    )
    result = resolve_models(api, registry)
    assert result.api["1"]["inputs"]["ckpt_name"] == "sdxl/sd_xl_base_1.0.safetensors"
    assert result.api["2"]["inputs"]["lora_name"] == "detail-tweaker.safetensors"
    assert result.api["3"]["inputs"]["model_name"] == "4x-UltraSharp.pth"
    assert result.api["2"]["inputs"]["model"] == ["1", 0]
    assert api["1"]["inputs"]["ckpt_name"] == "SDXL\\sd_xl_base_1.0.safetensors", "the input is not changed in place"
    assert [(r.node_id, r.input_name, r.resolved.rule) for r in result.renames] == [
        ("1", "ckpt_name", "separators"),
        ("2", "lora_name", "subfolder"),
        ("3", "model_name", "extension"),
    ]
    assert result.renames[0].message() == (
        "SDXL\\sd_xl_base_1.0.safetensors -> sdxl/sd_xl_base_1.0.safetensors (found by separators)"
    )
    assert result.ambiguous == []


def test_ambiguous_names_are_reported_with_candidates_and_left_alone(setup: tuple[Folders, NodeRegistry]) -> None:
    _, registry = setup
    result = resolve_models(_workflow("twin.safetensors"), registry)
    assert result.api["1"]["inputs"]["ckpt_name"] == "twin.safetensors"
    [amb] = result.ambiguous
    assert (amb.node_id, amb.input_name) == ("1", "ckpt_name")
    assert amb.error.candidates == ["a/twin.safetensors", "b/twin.safetensors"]


def test_hash_recorded_by_the_workflow_finds_a_renamed_file(
    setup: tuple[Folders, NodeRegistry], tmp_path: Path
) -> None:
    folders, registry = setup
    digest = hashlib.sha256(b"twin two").hexdigest()
    counted: list[Path] = []

    def hasher(path: Path) -> str:
        counted.append(path)
        return sha256_file(path)

    index = ModelIndex(folders, HashCache(tmp_path / "index.db", hasher=hasher))
    index.scan()
    api = _workflow("my-renamed-copy.safetensors")
    server_side = resolve_models(api, registry, hashes={"my-renamed-copy.safetensors": digest[:10]}, index=index)
    assert server_side.renames == [] and counted == [], "the server only uses hashes it has already"

    cli = resolve_models(api, registry, hashes={"my-renamed-copy.safetensors": digest[:10]}, index=index, hash_now=True)
    assert cli.api["1"]["inputs"]["ckpt_name"] == "b/twin.safetensors"
    assert cli.renames[0].resolved.rule == "hash"
    assert len(counted) == 3, "only the checkpoints folder is hashed"

    ambiguous_by_name = resolve_models(
        _workflow("twin.safetensors"), registry, hashes={"twin.safetensors": digest}, index=index
    )
    assert ambiguous_by_name.ambiguous == []
    assert ambiguous_by_name.api["1"]["inputs"]["ckpt_name"] == "b/twin.safetensors"


def test_valid_and_non_model_values_are_untouched(setup: tuple[Folders, NodeRegistry]) -> None:
    _, registry = setup
    api = _workflow("sdxl/sd_xl_base_1.0.safetensors")
    api["4"] = {"class_type": "ImageScale", "inputs": {"upscale_method": "Nearest-Exact", "width": 8}}
    result = resolve_models(api, registry)
    assert result.renames == [] and result.ambiguous == []
    assert result.api == api
