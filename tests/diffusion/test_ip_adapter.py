from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from diffusion.clip_vision import CLIPVision, load_clip_vision
from diffusion.ip_adapter import (
    IPAdapterError,
    apply_ip_adapter,
    detect_ip_adapter,
    image_tokens,
    layer_weights,
    load_ip_adapter,
    read_ip_adapter,
)
from tests.diffusion.tiny_image_models import flat, tiny_ip_adapter, tiny_vision_state
from tests.diffusion.tiny_sampling import sample_latent

VARIANTS = [
    ("ip-adapter_sd15.bin", "linear", "base"),
    ("ip-adapter_sd15_light.safetensors", "linear", "light"),
    ("ip-adapter-plus_sd15.safetensors", "resampler", "plus"),
    ("ip-adapter-plus-face_sd15.bin", "resampler", "plus-face"),
    ("ip-adapter-full-face_sd15.safetensors", "mlp", "full-face"),
]


@pytest.fixture(scope="module")
def vision(tmp_path_factory: pytest.TempPathFactory, manager) -> CLIPVision:
    path = tmp_path_factory.mktemp("vision") / "vit.safetensors"
    save_file(tiny_vision_state(), str(path))
    return load_clip_vision(path, manager)


def _write(path: Path, adapter: dict[str, dict]) -> Path:
    if path.suffix == ".bin":
        torch.save(adapter, path)
    else:
        save_file(flat(adapter), str(path))
    return path


@pytest.mark.parametrize(("name", "kind", "variant"), VARIANTS)
def test_variants_are_told_from_the_real_layouts(tmp_path: Path, sd1, name: str, kind: str, variant: str) -> None:
    clip_dim = 24 if kind == "linear" else 32  # image embeds or hidden states of the tiny encoder
    written = tiny_ip_adapter(sd1.model.unet, kind, clip_dim)
    path = _write(tmp_path / name, written)
    assert read_ip_adapter(path).keys() == flat(written).keys()
    adapter = load_ip_adapter(path)
    assert (adapter.arch.variant, adapter.arch.projection) == (variant, kind)
    assert adapter.arch.uses_hidden_states == (kind != "linear")
    assert torch.equal(adapter.layers[1][0], written["ip_adapter"]["1.to_k_ip.weight"])


def test_public_shapes_name_family_and_encoder() -> None:
    def linear(clip: int, cross: int) -> dict[str, tuple[int, ...]]:
        return {
            "image_proj.proj.weight": (4 * cross, clip),
            "image_proj.norm.weight": (cross,),
            "ip_adapter.1.to_k_ip.weight": (320, cross),
        }

    base = detect_ip_adapter(linear(1024, 768), "ip-adapter_sd15.bin")
    assert (base.variant, base.family, base.encoder) == ("base", "sd1", "ViT-H/14")
    vit_g = detect_ip_adapter(linear(1280, 2048), "ip-adapter_sdxl.bin")
    assert (vit_g.variant, vit_g.family, vit_g.encoder) == ("vit-g", "sdxl", "ViT-bigG/14")
    with pytest.raises(IPAdapterError, match="not an IP-Adapter"):
        detect_ip_adapter({"lora_unet_x.lora_up.weight": (4, 4)}, "lora.safetensors")
    with pytest.raises(IPAdapterError, match="to_k_ip"):
        detect_ip_adapter({k: v for k, v in linear(1024, 768).items() if "ip_adapter" not in k})


def _sample(model, cond, **over) -> torch.Tensor:
    return sample_latent(model, *cond, **({"steps": 4} | over))


@pytest.fixture(scope="module")
def cond(sd1):
    p, n = sd1.clip.encode("a cat"), sd1.clip.encode("")
    return [[p.cond, {}]], [[n.cond, {}]]


@pytest.fixture(scope="module")
def plus(tmp_path_factory: pytest.TempPathFactory, sd1):
    path = tmp_path_factory.mktemp("ip") / "ip-adapter-plus_sd15.safetensors"
    return load_ip_adapter(_write(path, tiny_ip_adapter(sd1.model.unet, "resampler", 32, seed=5)))


def test_weight_zero_is_bit_identical_and_the_base_is_untouched(sd1, cond, plus, vision) -> None:
    base_state = {k: v.clone() for k, v in sd1.model.unet.state_dict().items()}
    processors = dict(sd1.model.unet.attn_processors)
    plain = _sample(sd1.model, cond)
    tokens = image_tokens(plus, vision, [(torch.rand(1, 30, 30, 3, generator=torch.Generator().manual_seed(2)), 1.0)])
    zero = sd1.model.with_unet(apply_ip_adapter(sd1.model.unet, plus, tokens, 0.0))
    assert torch.equal(_sample(zero, cond), plain)
    adapted = sd1.model.with_unet(apply_ip_adapter(sd1.model.unet, plus, tokens, 1.0))
    two = adapted.with_unet(apply_ip_adapter(adapted.unet, plus, tokens, 0.5))
    one_run = _sample(adapted, cond)
    assert not torch.equal(one_run, plain)
    assert not torch.equal(_sample(two, cond), one_run)
    assert torch.equal(_sample(sd1.model, cond), plain)
    assert dict(sd1.model.unet.attn_processors) == processors
    for key, value in sd1.model.unet.state_dict().items():
        assert torch.equal(value, base_state[key]), key
    assert (
        adapted.unet.down_blocks[1].attentions[0].proj_in.weight
        is sd1.model.unet.down_blocks[1].attentions[0].proj_in.weight
    )


def test_start_and_end_percent_act_only_on_their_steps(sd1, cond, plus, vision, monkeypatch) -> None:
    import diffusion.sampling as sampling

    tokens = image_tokens(plus, vision, [(torch.rand(1, 28, 28, 3), 1.0)], noise=0.3)
    late = sd1.model.with_unet(apply_ip_adapter(sd1.model.unet, plus, tokens, 1.0, start=0.6, end=1.0))
    seen: list[float] = []
    original = sampling.unet_step

    def spy(info):
        seen.append(info.percent)
        return original(info)

    monkeypatch.setattr(sampling, "unet_step", spy)
    plain_first = _sample(sd1.model, cond, last_step=2, force_full_denoise=False)
    late_first = _sample(late, cond, last_step=2, force_full_denoise=False)
    assert seen and max(seen) < 0.6  # the first two steps of four lie before 60 %
    assert torch.equal(late_first, plain_first)
    assert not torch.equal(_sample(late, cond), _sample(sd1.model, cond))


def test_mask_limits_the_prompt_to_its_region(sd1, cond, plus, vision) -> None:
    tokens = image_tokens(plus, vision, [(torch.rand(1, 28, 28, 3), 1.0)])
    mask = torch.zeros(8, 8)
    masked = sd1.model.with_unet(apply_ip_adapter(sd1.model.unet, plus, tokens, 1.0, mask=mask))
    assert torch.equal(_sample(masked, cond), _sample(sd1.model, cond))
    mask[:, :4] = 1
    half = sd1.model.with_unet(apply_ip_adapter(sd1.model.unet, plus, tokens, 1.0, mask=mask))
    assert not torch.equal(_sample(half, cond), _sample(sd1.model, cond))


def test_weight_types_and_mismatches() -> None:
    assert layer_weights(3, 1.0, "linear") == [1.0, 1.0, 1.0]
    assert layer_weights(3, 1.0, "ease in") == [0.0, 0.5, 1.0]
    assert layer_weights(3, 1.0, "ease out") == [1.0, 0.5, 0.0]
    with pytest.raises(IPAdapterError, match="weight_type"):
        layer_weights(3, 1.0, "cubic")


def test_an_adapter_for_another_model_is_refused(sd1, plus, vision, tiny_files) -> None:
    from diffusion.loader import load_checkpoint

    with pytest.raises(IPAdapterError, match="clip_vision"):
        plus.tokens(torch.zeros(1, 4, 99))
    sdxl = load_checkpoint(tiny_files["sdxl"][0], sd1.model.manager, want_clip=False, want_vae=False)
    tokens = image_tokens(plus, vision, [(torch.rand(1, 28, 28, 3), 1.0)])
    with pytest.raises(IPAdapterError, match="ipadapter"):
        apply_ip_adapter(sdxl.model.unet, plus, tokens, 1.0)


def test_mask_follows_an_area_call_to_its_part_of_the_latent() -> None:
    from diffusion.ip_adapter import token_mask
    from diffusion.step import StepInfo

    mask = torch.zeros(8, 16)
    mask[:, :8] = 1  # the left half of a 8x16 latent
    negative = torch.zeros(1, dtype=torch.bool)
    whole = token_mask(mask, StepInfo(0.0, negative, (8, 16)), 32).reshape(4, 8)
    assert torch.equal(whole[:, :4], torch.ones(4, 4)) and torch.equal(whole[:, 4:], torch.zeros(4, 4))
    left = StepInfo(0.0, negative, (8, 8), crop=(8, 16, 0, 8, 0, 8))
    right = StepInfo(0.0, negative, (8, 8), crop=(8, 16, 0, 8, 8, 16))
    assert torch.equal(token_mask(mask, left, 16), torch.ones(1, 16, 1))
    assert torch.equal(token_mask(mask, right, 16), torch.zeros(1, 16, 1))
