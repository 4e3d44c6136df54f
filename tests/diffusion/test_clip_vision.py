from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from diffusion.checkpoint import CheckpointError
from diffusion.clip_vision import (
    CLIP_MEAN,
    CLIP_STD,
    detect_vision,
    load_clip_vision,
    load_clip_vision_state,
    preprocess,
    vision_state,
)
from diffusion.memory import ModelManager
from diffusion.tiny_dit import TINY_SIGLIP, siglip_file_state
from tests.diffusion.tiny_image_models import TINY_VISION, tiny_vision_state, to_openclip

MEAN = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(CLIP_STD).view(1, 3, 1, 1)


def _manager() -> ModelManager:
    return ModelManager(device=torch.device("cpu"), dtype=torch.float32)


def test_center_crop_of_an_image_already_at_size_is_its_middle_normalised() -> None:
    # 4 x 8 image, size 4: no resize; the centre columns 2..5 are kept, each pixel (p - mean) / std.
    image = torch.arange(4 * 8 * 3, dtype=torch.float32).reshape(1, 4, 8, 3) / (4 * 8 * 3)
    out = preprocess(image, 4, "center")
    expected = (image[:, :, 2:6, :].movedim(-1, 1) - MEAN) / STD
    assert out.shape == (1, 3, 4, 4)
    assert torch.allclose(out, expected)
    # a hand-computed pixel: red channel of row 0, column 2 is 6 / 96
    assert out[0, 0, 0, 0].item() == pytest.approx((6 / 96 - 0.48145466) / 0.26862954, rel=1e-6)


def test_resizing_follows_pil_bicubic_and_none_squashes() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    image = torch.from_numpy(pixels).float().unsqueeze(0) / 255
    out = preprocess(image, 20, "center")
    # the reference: PIL bicubic to 20 on the short side (30 x 20), centre crop, normalise
    ref = np.asarray(Image.fromarray(pixels).resize((30, 20), Image.BICUBIC), dtype=np.float32)[:, 5:25] / 255
    ref_t = (torch.from_numpy(ref).movedim(-1, 0).unsqueeze(0) - MEAN) / STD
    assert (out - ref_t).abs().mul(STD).max().item() < 3 / 255
    squashed = preprocess(torch.full((2, 10, 30, 4), 0.5), 20, "none")
    assert squashed.shape == (2, 3, 20, 20)
    assert torch.allclose(squashed, ((torch.full((1, 3, 1, 1), 0.5) - MEAN) / STD).expand(2, 3, 20, 20))


def test_preprocess_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="crop"):
        preprocess(torch.zeros(1, 8, 8, 3), 4, "left")
    with pytest.raises(ValueError, match="image"):
        preprocess(torch.zeros(8, 8, 3), 4)


@pytest.mark.parametrize("layout", ["hf", "openclip"])
def test_both_layouts_load_to_the_same_encoder(tmp_path: Path, layout: str) -> None:
    state = tiny_vision_state()
    written = state if layout == "hf" else to_openclip(state, TINY_VISION.layers)
    path = tmp_path / f"{layout}.safetensors"
    save_file(written, str(path))
    vision = load_clip_vision(path, _manager())
    assert vision.arch == TINY_VISION
    loaded = vision.module.state_dict()
    for key, tensor in state.items():
        assert torch.equal(loaded[key], tensor), key
    image = torch.rand(2, 35, 30, 3, generator=torch.Generator().manual_seed(1))
    out = vision.encode(image)
    assert out.image_embeds.shape == (2, 24)
    assert out.last_hidden_state.shape == out.penultimate_hidden_states.shape == (2, 5, 32)
    with torch.no_grad():
        direct = vision.module(pixel_values=preprocess(image, 28), output_hidden_states=True)
    assert torch.allclose(out.image_embeds, direct.image_embeds)
    assert torch.allclose(out.penultimate_hidden_states, direct.hidden_states[-2])


def test_size_is_told_from_shapes() -> None:
    def shapes(hidden: int, proj: int, positions: int = 257) -> dict[str, tuple[int, ...]]:
        v = "vision_model."
        return {
            f"{v}embeddings.patch_embedding.weight": (hidden, 3, 14, 14),
            f"{v}embeddings.position_embedding.weight": (positions, hidden),
            f"{v}encoder.layers.0.mlp.fc1.weight": (hidden * 4, hidden),
            f"{v}encoder.layers.31.mlp.fc1.weight": (hidden * 4, hidden),
            "visual_projection.weight": (proj, hidden),
        }

    assert detect_vision(shapes(1280, 1024)).name == "ViT-H/14"
    big = detect_vision(shapes(1664, 1280))
    assert (big.name, big.heads, big.hidden_act, big.image_size, big.layers) == ("ViT-bigG/14", 16, "gelu", 224, 32)
    large = detect_vision(shapes(1024, 768, positions=577))
    assert (large.name, large.hidden_act, large.image_size) == ("ViT-L/14", "quick_gelu", 336)


def test_a_file_that_is_no_encoder_is_named(tmp_path: Path) -> None:
    path = tmp_path / "lora.safetensors"
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(CheckpointError, match=r"lora\.safetensors"):
        load_clip_vision(path, _manager())
    assert vision_state(tiny_vision_state()).keys() == tiny_vision_state().keys()


@pytest.mark.parametrize("variant", ["with head", "without head", "whole SigLIP"])
def test_siglip_files_load_as_siglip(tmp_path: Path, variant: str) -> None:
    state = siglip_file_state(head=variant != "without head")
    if variant == "whole SigLIP":  # a SiglipModel checkpoint: the text tower and the logit scale beside
        state |= {"text_model.embeddings.token_embedding.weight": torch.zeros(10, 32), "logit_scale": torch.ones(1)}
    path = tmp_path / "sigclip_vision_patch14_384.safetensors"
    save_file(state, str(path))
    vision = load_clip_vision(path, _manager())
    assert vision.arch == TINY_SIGLIP
    loaded = vision.module.state_dict()
    assert not any(k.startswith("head.") for k in loaded)  # the pooling head is no image prompt's input
    for key, tensor in loaded.items():
        assert torch.equal(tensor, state[f"vision_model.{key}"]), key
    image = torch.rand(2, 50, 70, 3, generator=torch.Generator().manual_seed(1))
    out = vision.encode(image)
    # 3 x 3 patches of 14 px, no class token; the image embedding is the whole last layer, as the reference has it
    assert out.last_hidden_state.shape == out.penultimate_hidden_states.shape == (2, 9, 32)
    assert torch.equal(out.image_embeds, out.last_hidden_state)
    pixels = preprocess(image, 42, "center", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    with torch.no_grad():
        direct = vision.module(pixel_values=pixels, output_hidden_states=True)
    assert torch.allclose(out.last_hidden_state, direct.last_hidden_state)
    assert torch.allclose(out.penultimate_hidden_states, direct.hidden_states[-2])
    # SigLIP normalises with mean and std 0.5: a grey 0.75 image is 0.5 everywhere
    assert torch.allclose(vision.encode(torch.full((1, 42, 42, 3), 0.75)).last_hidden_state,
                          vision.encode_pixels(torch.full((1, 3, 42, 42), 0.5)).last_hidden_state)  # fmt: skip
    assert not torch.allclose(vision.encode(image, "none").last_hidden_state, out.last_hidden_state)


def _siglip_shapes(hidden: int, patch: int, positions: int, layers: int = 27) -> dict[str, tuple[int, ...]]:
    v = "vision_model."
    return {
        f"{v}embeddings.patch_embedding.weight": (hidden, 3, patch, patch),
        f"{v}embeddings.patch_embedding.bias": (hidden,),
        f"{v}embeddings.position_embedding.weight": (positions, hidden),
        f"{v}encoder.layers.0.mlp.fc1.weight": (4304, hidden),
        f"{v}encoder.layers.{layers - 1}.mlp.fc1.weight": (4304, hidden),
    }


def test_siglip_size_is_told_from_shapes() -> None:
    so400m = detect_vision(_siglip_shapes(1152, 14, 729))
    assert so400m.name == "SigLIP so400m patch14 384"
    assert (so400m.family, so400m.hidden, so400m.layers, so400m.heads, so400m.intermediate) == (
        "siglip",
        1152,
        27,
        16,
        4304,
    )
    assert (so400m.patch, so400m.image_size, so400m.projection_dim, so400m.hidden_act) == (
        14,
        384,
        0,
        "gelu_pytorch_tanh",
    )
    assert so400m.mean_std == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    large = detect_vision(_siglip_shapes(1152, 16, 1024))
    assert (large.name, large.image_size) == ("SigLIP so400m patch16 512", 512)


def test_siglip_files_loom_cannot_build_are_named(tmp_path: Path) -> None:
    naflex = _siglip_shapes(1152, 16, 256)
    naflex["vision_model.embeddings.patch_embedding.weight"] = (1152, 3 * 16 * 16)
    with pytest.raises(CheckpointError, match="SigLIP 2 NaFlex"):
        detect_vision(naflex)
    with pytest.raises(CheckpointError, match="without a projection"):  # a class token's position: CLIP
        detect_vision(_siglip_shapes(1152, 14, 730))
    state = siglip_file_state()
    del state["vision_model.encoder.layers.1.mlp.fc2.bias"]
    with pytest.raises(CheckpointError, match=r"tiny\.safetensors: SigLIP .* 1 missing"):
        load_clip_vision_state(state, _manager(), "tiny.safetensors")
