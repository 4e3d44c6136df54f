"""Runtime assembly: the demo models written on first start."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.runtime import add_common_arguments, build_runtime
from diffusion.demo import DEMO_FILES, DEMO_LORA, DEMO_NAME


def args_for(base: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    parser.add_argument("--demo-models", action="store_true")
    return parser.parse_args(["--base-directory", str(base), *extra])


def test_first_start_writes_the_demo_checkpoint_and_its_stand_ins(tmp_path: Path) -> None:
    runtime = build_runtime(args_for(tmp_path))
    for folder, name in DEMO_FILES.items():
        assert runtime.folders.list_models(folder) == [name], folder


def test_real_checkpoints_get_no_demo_files_unless_asked(tmp_path: Path) -> None:
    (tmp_path / "models" / "checkpoints").mkdir(parents=True)
    (tmp_path / "models" / "checkpoints" / "mine.safetensors").write_bytes(b"x")
    runtime = build_runtime(args_for(tmp_path))
    assert runtime.folders.list_models("checkpoints") == ["mine.safetensors"]
    assert runtime.folders.list_models("loras") == []
    runtime = build_runtime(args_for(tmp_path, "--demo-models"))
    assert runtime.folders.list_models("checkpoints") == [DEMO_NAME, "mine.safetensors"]
    assert runtime.folders.list_models("loras") == [DEMO_LORA]
