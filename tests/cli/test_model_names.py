"""`main.py validate` and `run` find the model files a shared workflow means (separators, subfolders, missing
extensions, hashes), say so on standard error, and refuse ambiguous names with their candidates."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.folders import Folders
from engine.registry import NodeRegistry
from formats.canvas_export import api_to_canvas
from nodes import register_builtin
from nodes.shared import node_environment

ROOT = Path(__file__).resolve().parents[2]


def workflow(ckpt: str) -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }


@pytest.fixture
def base(tmp_path: Path) -> Path:
    folders = Folders.under(tmp_path)
    folders.ensure()
    for name, data in [
        ("sdxl/sd_xl_base_1.0.safetensors", b"xl"),
        ("a/twin.safetensors", b"1"),
        ("b/twin.safetensors", b"2"),
    ]:
        path = folders.model_dirs("checkpoints")[0] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return tmp_path


def validate(base: Path, data: dict, *flags: str) -> subprocess.CompletedProcess[str]:
    path = base / "shared.json"
    path.write_text(json.dumps(data))
    return subprocess.run(
        [
            sys.executable,
            "main.py",
            "validate",
            str(path),
            "--base-directory",
            str(base),
            "--disable-custom-nodes",
            *flags,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_windows_path_resolves_and_is_reported(base: Path) -> None:
    proc = validate(base, workflow("SDXL\\sd_xl_base_1.0.safetensors"))
    assert proc.returncode == 0, proc.stderr
    assert (
        "resolved model: node 1 (CheckpointLoaderSimple) ckpt_name: SDXL\\sd_xl_base_1.0.safetensors -> "
        "sdxl/sd_xl_base_1.0.safetensors (found by separators)"
    ) in proc.stderr

    strict = validate(base, workflow("SDXL\\sd_xl_base_1.0.safetensors"), "--strict-model-names")
    assert strict.returncode != 0 and "SDXL\\\\sd_xl_base_1.0.safetensors" in strict.stderr


def test_ambiguous_name_lists_its_candidates(base: Path) -> None:
    proc = validate(base, workflow("twin"))
    assert proc.returncode != 0
    assert "'a/twin.safetensors'" in proc.stderr and "'b/twin.safetensors'" in proc.stderr
    assert proc.stderr.count("twin") >= 3 and proc.stderr.count("error [") == 1


def test_canvas_file_hash_finds_a_renamed_file_and_the_index_is_kept(base: Path) -> None:
    registry = NodeRegistry(node_environment(Folders.under(base)))
    register_builtin(registry)
    canvas = api_to_canvas(workflow("my own name.safetensors"), registry)
    loader = next(n for n in canvas["nodes"] if n["type"] == "CheckpointLoaderSimple")
    digest = hashlib.sha256(b"2").hexdigest()
    loader.setdefault("properties", {})["models"] = [
        {"name": "my own name.safetensors", "hash": digest, "hash_type": "SHA256", "directory": "checkpoints"}
    ]
    proc = validate(base, canvas)
    assert proc.returncode == 0, proc.stderr
    assert "my own name.safetensors -> b/twin.safetensors (found by hash)" in proc.stderr
    assert (base / "user" / "model_index.db").is_file()
