"""Diffusers pipeline folders load from local files only and compute what the saved modules compute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from diffusion.checkpoint import CheckpointError
from diffusion.loader import load_diffusers_folder


def _save_pipeline(root: Path, modules, prediction: str) -> Path:
    root.mkdir(parents=True)
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    modules.unet.save_pretrained(root / "unet")
    modules.vae.save_pretrained(root / "vae")
    for sub, module in zip(("text_encoder", "text_encoder_2"), modules.text, strict=False):
        module.save_pretrained(root / sub)
    (root / "scheduler").mkdir()
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps({"prediction_type": prediction}))
    return root


@pytest.mark.parametrize(("family", "prediction"), [("sd1", "epsilon"), ("sdxl", "v_prediction")])
def test_folder_round_trip(tmp_path: Path, tiny_files, manager, family: str, prediction: str) -> None:
    _path, ref = tiny_files[family]
    ckpt = load_diffusers_folder(_save_pipeline(tmp_path / family, ref, prediction), manager)
    assert ckpt.info.family == family
    assert ckpt.model.prediction == ("v" if prediction == "v_prediction" else "eps")
    z = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        assert float((ckpt.vae.module.decode(z).sample - ref.vae.decode(z).sample).abs().max()) < 1e-5
    encoded = ckpt.clip.encode("a cat")
    assert encoded.cond.shape[-1] == ref.spec.unet.context_dim
    assert (encoded.pooled is not None) == (family == "sdxl")


def test_not_a_pipeline_folder(tmp_path: Path, manager) -> None:
    with pytest.raises(CheckpointError, match="not a diffusers pipeline folder"):
        load_diffusers_folder(tmp_path, manager)
