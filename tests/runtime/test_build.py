"""The composition root: the demo models written on first start, the registry, the environment, the cache."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from diffusion.demo import DEMO_CLIP_VISION, DEMO_FILES, DEMO_LORA, DEMO_NAME
from diffusion.demo_dit import DEMO_REDUX, DEMO_SIGLIP
from runtime.build import build_executor, build_runtime, output_cache
from runtime.settings import RuntimeSettings


def settings(base: Path, **changes: Any) -> RuntimeSettings:
    return replace(RuntimeSettings(base_directory=base, load_packs=False), **changes)


def test_first_start_writes_the_demo_checkpoint_and_its_stand_ins(tmp_path: Path) -> None:
    runtime = build_runtime(settings(tmp_path, cpu=True))
    for folder, name in DEMO_FILES.items():
        assert runtime.folders.list_models(folder) == sorted({name, DEMO_SIGLIP} if folder == "clip_vision" else {name})
    assert runtime.folders.list_models("style_models") == [DEMO_REDUX]
    assert "KSampler" in runtime.registry and runtime.registry.env is runtime.env
    assert runtime.env.force_cpu and runtime.env.folders is runtime.folders
    assert runtime.pack_summaries is None and runtime.packs == []


def test_real_checkpoints_get_no_demo_files_unless_asked(tmp_path: Path) -> None:
    (tmp_path / "models" / "checkpoints").mkdir(parents=True)
    (tmp_path / "models" / "checkpoints" / "mine.safetensors").write_bytes(b"x")
    runtime = build_runtime(settings(tmp_path))
    assert runtime.folders.list_models("checkpoints") == ["mine.safetensors"]
    assert runtime.folders.list_models("loras") == []
    runtime = build_runtime(settings(tmp_path, demo_models=True))
    assert runtime.folders.list_models("checkpoints") == [DEMO_NAME, "mine.safetensors"]
    assert runtime.folders.list_models("loras") == [DEMO_LORA]


def test_the_redux_demo_files_join_a_machine_from_before_them(tmp_path: Path) -> None:
    """A first start that predates the SigLIP and Redux demos left the CLIP vision demo alone in clip_vision: the
    SigLIP encoder goes beside it; a real encoder there keeps the folder free of demo files."""
    runtime = build_runtime(settings(tmp_path))
    clip_vision = runtime.folders.model_dirs("clip_vision")[0]
    (clip_vision / DEMO_SIGLIP).unlink()
    (runtime.folders.model_dirs("style_models")[0] / DEMO_REDUX).unlink()
    runtime = build_runtime(settings(tmp_path))
    assert runtime.folders.list_models("clip_vision") == [DEMO_CLIP_VISION, DEMO_SIGLIP]
    assert runtime.folders.list_models("style_models") == [DEMO_REDUX]
    (clip_vision / DEMO_SIGLIP).unlink()
    (clip_vision / "clip_vision_h.safetensors").write_bytes(b"x")
    assert DEMO_SIGLIP not in build_runtime(settings(tmp_path)).folders.list_models("clip_vision")


def test_output_cache_follows_the_settings(tmp_path: Path) -> None:
    assert output_cache(settings(tmp_path, cache_max_entries=5)).max_entries == 5
    assert output_cache(settings(tmp_path, cache_outputs=False)).max_bytes == 0
    default = output_cache(settings(tmp_path))
    assert default.max_entries is None and default.max_bytes
    assert output_cache(settings(tmp_path, cache_classic=True)).classic and not default.classic
    executor = build_executor(build_runtime(settings(tmp_path, cache_max_entries=3)))
    assert executor.cache.max_entries == 3 and executor.env is not None


def test_lowvram_flag_reaches_the_model_manager(tmp_path: Path) -> None:
    import argparse

    from cli.runtime import add_common_arguments, runtime_settings

    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    chosen = runtime_settings(parser.parse_args(["--lowvram", "--cpu", "--base-directory", str(tmp_path)]))
    assert chosen.lowvram and not runtime_settings(parser.parse_args([])).lowvram
    manager = build_runtime(replace(chosen, load_packs=False)).env.models
    assert manager.lowvram and manager.device.type == "cpu"
    assert not build_runtime(settings(tmp_path, cpu=True)).env.models.lowvram
