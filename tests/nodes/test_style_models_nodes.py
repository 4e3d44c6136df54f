from __future__ import annotations

from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from diffusion.checkpoint import CheckpointError
from tests.diffusion.tiny_image_models import tiny_redux, tiny_t2i_style, tiny_vision_state


def test_loader_and_apply(run: Any, env: Any) -> None:
    folder = env.folders.model_dirs("style_models")[0]
    save_file(tiny_t2i_style(context_dim=16), str(folder / "t2iadapter_style_sd14v1.safetensors"))
    save_file(tiny_redux(text_dim=16), str(folder / "flux1-redux-dev.safetensors"))
    save_file(tiny_vision_state(), str(env.folders.model_dirs("clip_vision")[0] / "vit.safetensors"))
    (vision,) = run("CLIPVisionLoader", clip_name="vit.safetensors")
    (encoded,) = run("CLIPVisionEncode", clip_vision=vision, image=torch.rand(2, 32, 32, 3), crop="center")
    conditioning = [[torch.randn(1, 5, 16), {}]]
    style = run("StyleModelLoader", style_model_name="t2iadapter_style_sd14v1.safetensors")
    assert style.kind == "t2i-style"
    (scaled,) = run(
        "StyleModelApply",
        conditioning=conditioning,
        style_model=style,
        clip_vision_output=encoded,
        strength=0.5,
        strength_type="multiply",
    )
    assert scaled[0].shape == (1, 5 + 2 * 4, 16)  # two images, four style tokens each
    assert torch.allclose(scaled[0][:, 5:], style.tokens(encoded).reshape(1, 8, 16) * 0.5)
    (biased,) = run(
        "StyleModelApply",
        conditioning=conditioning,
        style_model=style,
        clip_vision_output=encoded,
        strength=3.0,
        strength_type="attn_bias",
    )
    assert biased[1]["attention_bias"][5:].allclose(torch.full((8,), 1.0986), atol=1e-4)
    redux = run("StyleModelLoader", style_model_name="flux1-redux-dev.safetensors")
    (tokens,) = run(
        "StyleModelApply",
        conditioning=conditioning,
        style_model=redux,
        clip_vision_output=encoded,
        strength=1.0,
        strength_type="multiply",
    )
    patches = encoded.last_hidden_state.shape[1]
    assert tokens[0].shape == (1, 5 + 2 * patches, 16)


def test_loader_names_its_input(run: Any, env: Any) -> None:
    save_file({"x.weight": torch.zeros(1)}, str(env.folders.model_dirs("style_models")[0] / "other.safetensors"))
    with pytest.raises(CheckpointError, match=r"style_model_name: other\.safetensors: not a style model"):
        run("StyleModelLoader", style_model_name="other.safetensors")
