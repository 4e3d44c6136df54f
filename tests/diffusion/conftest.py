"""Tiny models of each family, written by the tests in the real single-file layout (once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffusion.memory import ModelManager
from diffusion.tiny import TinyModules, build_tiny, tiny_spec, write_checkpoint


@pytest.fixture(scope="session")
def manager() -> ModelManager:
    return ModelManager.create(force_cpu=True)


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, TinyModules]]:
    root = tmp_path_factory.mktemp("tiny")
    out = {}
    for family in ("sd1", "sd2", "sdxl"):
        modules = build_tiny(tiny_spec(family), seed=7)
        out[family] = (write_checkpoint(root / f"tiny-{family}.safetensors", modules), modules)
    return out


@pytest.fixture(scope="session")
def sd1(tiny_files, manager):
    from diffusion.loader import load_checkpoint

    return load_checkpoint(tiny_files["sd1"][0], manager)


@pytest.fixture(scope="module")
def attention_model(manager):
    """The tiny SD 1.x model with self-attention at every depth (tests/diffusion/tiny_patch_models.py)."""
    from tests.diffusion.tiny_patch_models import attention_model

    return attention_model(manager)
