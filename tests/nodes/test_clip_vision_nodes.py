from __future__ import annotations

from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from diffusion.tiny_dit import TINY_SIGLIP, siglip_file_state
from tests.diffusion.tiny_image_models import tiny_vision_state, to_openclip


def test_loader_and_encode(run: Any, env: Any) -> None:
    folder = env.folders.model_dirs("clip_vision")[0]
    save_file(to_openclip(tiny_vision_state(), 3), str(folder / "vit.safetensors"))
    (vision,) = run("CLIPVisionLoader", clip_name="vit.safetensors")
    image = torch.rand(1, 40, 20, 3)
    (center,) = run("CLIPVisionEncode", clip_vision=vision, image=image, crop="center")
    (whole,) = run("CLIPVisionEncode", clip_vision=vision, image=image, crop="none")
    assert center.image_embeds.shape == whole.image_embeds.shape == (1, 24)
    assert not torch.allclose(center.image_embeds, whole.image_embeds)


def test_loader_and_encode_siglip(run: Any, env: Any) -> None:
    folder = env.folders.model_dirs("clip_vision")[0]
    save_file(siglip_file_state(), str(folder / "sigclip_vision_patch14_384.safetensors"))
    (vision,) = run("CLIPVisionLoader", clip_name="sigclip_vision_patch14_384.safetensors")
    assert vision.arch == TINY_SIGLIP
    image = torch.rand(2, 40, 20, 3)
    (center,) = run("CLIPVisionEncode", clip_vision=vision, image=image, crop="center")
    (whole,) = run("CLIPVisionEncode", clip_vision=vision, image=image, crop="none")
    assert center.last_hidden_state.shape == whole.penultimate_hidden_states.shape == (2, 9, 32)
    assert torch.equal(center.image_embeds, center.last_hidden_state)
    assert not torch.allclose(center.last_hidden_state, whole.last_hidden_state)


def test_loader_names_its_input(run: Any, env: Any) -> None:
    with pytest.raises(FileNotFoundError, match="clip_name"):
        run("CLIPVisionLoader", clip_name="missing.safetensors")
    folder = env.folders.model_dirs("clip_vision")[0]
    save_file({"x.weight": torch.zeros(1)}, str(folder / "other.safetensors"))
    with pytest.raises(ValueError, match=r"clip_name: other\.safetensors"):
        run("CLIPVisionLoader", clip_name="other.safetensors")
