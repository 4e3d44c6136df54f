from collections.abc import Callable

import pytest
import torch
from torch import nn

from diffusion.ldm_names import ldm_module_names
from diffusion.lora import apply_patches, match_lora, shared_copy
from diffusion.lora_keys import TE1, TE2, UNET
from tests.diffusion.tiny_lora_models import tiny_clip, tiny_unet, unet_inputs

RANK = 2


def _te(name: str) -> str:
    """A text encoder layer as files name it (transformers 5 dropped the `text_model.` level of CLIPTextModel)."""
    return name if name.startswith("text_model.") or name == "text_projection" else "text_model." + name


def _layers(model: nn.Module, kinds: tuple[type, ...] = (nn.Linear, nn.Conv2d)) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, kinds)}


def _lora_pair(weight: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    out_dim, in_dim = weight.shape[:2]
    kernel = tuple(weight.shape[2:])
    down = torch.randn(RANK, in_dim, *kernel, generator=gen) * 0.1
    up = torch.randn(out_dim, RANK, *((1,) * len(kernel)), generator=gen) * 0.1
    return down, up


def _make_lora(
    model: nn.Module, name_of: Callable[[str], str], down_suffix: str, up_suffix: str, alpha: float | None = None
) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    sd: dict[str, torch.Tensor] = {}
    for name, layer in _layers(model).items():
        stem = name_of(name)
        sd[stem + down_suffix], sd[stem + up_suffix] = _lora_pair(layer.weight, gen)
        if alpha is not None:
            sd[stem + ".alpha"] = torch.tensor(alpha)
    return sd


def _expected(
    base: nn.Module, sd: dict[str, torch.Tensor], stem: str, down: str, up: str, scale: float
) -> torch.Tensor:
    d, u = sd[stem + down], sd[stem + up]
    return (u.reshape(u.shape[0], -1) @ d.reshape(RANK, -1)).reshape(base.weight.shape) * scale


@pytest.fixture(scope="module")
def unet() -> nn.Module:
    return tiny_unet()


@pytest.fixture(scope="module")
def clip() -> nn.Module:
    return tiny_clip()


def test_kohya_keys_named_after_the_ldm_layout_map_every_unet_layer(unet: nn.Module) -> None:
    ldm = ldm_module_names(unet)
    sd = _make_lora(unet, lambda n: "lora_unet_" + ldm[n].replace(".", "_"), ".lora_down.weight", ".lora_up.weight")
    match = match_lora(sd, {UNET: unet})
    assert match.unmapped == {}
    assert {p.target.module for p in match.patches} == set(_layers(unet))
    stem = "lora_unet_input_blocks_1_1_proj_in"
    assert stem + ".lora_down.weight" in sd
    patch = next(p for p in match.patches if p.target.module == "down_blocks.0.attentions.0.proj_in")
    assert torch.equal(patch.down, sd[stem + ".lora_down.weight"])


def test_kohya_keys_named_after_diffusers_with_alpha_scale(unet: nn.Module) -> None:
    sd = _make_lora(
        unet, lambda n: "lora_unet_" + n.replace(".", "_"), ".lora_down.weight", ".lora_up.weight", alpha=1.0
    )
    match = match_lora(sd, {UNET: unet})
    assert match.unmapped == {}
    assert len(match.patches) == len(_layers(unet))
    assert all(p.scale == pytest.approx(1.0 / RANK) for p in match.patches)
    name = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
    patched = apply_patches({UNET: unet}, match.patches, {UNET: 0.5})[UNET]
    stem = "lora_unet_" + name.replace(".", "_")
    layer = unet.get_submodule(name)
    want = layer.weight + 0.5 * _expected(layer, sd, stem, ".lora_down.weight", ".lora_up.weight", 1.0 / RANK)
    assert torch.allclose(patched.get_submodule(name).weight, want, atol=1e-6)


def test_peft_and_old_diffusers_keys_map_to_unet_and_text_encoder(unet: nn.Module, clip: nn.Module) -> None:
    sd = _make_lora(unet, lambda n: "unet." + n, ".lora_A.weight", ".lora_B.weight")
    sd |= _make_lora(clip, lambda n: "text_encoder." + _te(n), ".lora_A.weight", ".lora_B.weight")
    old = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora"
    sd[old + ".down.weight"], sd[old + ".up.weight"] = torch.zeros(RANK, 8), torch.zeros(8, RANK)
    match = match_lora(sd, {UNET: unet, TE1: clip})
    assert match.unmapped == {}
    targets = {(p.target.component, p.target.module) for p in match.patches}
    q_proj = next(n for n in _layers(clip) if n.endswith("encoder.layers.1.self_attn.q_proj"))
    assert (TE1, q_proj) in targets
    assert (UNET, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0") in targets
    assert len(match.patches) == len(_layers(unet)) + len(_layers(clip)) + 1


def test_kohya_text_encoder_keys_and_sdxl_second_encoder() -> None:
    clip_l, clip_g = tiny_clip(1), tiny_clip(2, hidden=24, projection=True)
    sd = _make_lora(clip_l, lambda n: "lora_te1_" + _te(n).replace(".", "_"), ".lora_down.weight", ".lora_up.weight")
    sd |= _make_lora(clip_g, lambda n: "lora_te2_" + _te(n).replace(".", "_"), ".lora_down.weight", ".lora_up.weight")
    sd |= _make_lora(clip_g, lambda n: "text_encoder_2." + _te(n), ".lora_A.weight", ".lora_B.weight")
    match = match_lora(sd, {TE1: clip_l, TE2: clip_g})
    assert match.unmapped == {}
    assert sum(p.target.component == TE2 for p in match.patches) == 2 * len(_layers(clip_g))
    assert any(p.target == p.target.__class__(TE2, "text_projection") for p in match.patches)


def test_locon_conv_layer_delta(unet: nn.Module) -> None:
    gen = torch.Generator().manual_seed(3)
    name, stem = "down_blocks.0.resnets.0.conv1", "lora_unet_input_blocks_1_0_in_layers_2"
    layer = unet.get_submodule(name)
    assert layer.weight.shape[2:] == (3, 3)
    down, up = _lora_pair(layer.weight, gen)
    sd = {stem + ".lora_down.weight": down, stem + ".lora_up.weight": up, stem + ".alpha": torch.tensor(4.0)}
    match = match_lora(sd, {UNET: unet})
    assert [p.target.module for p in match.patches] == [name]
    patched = apply_patches({UNET: unet}, match.patches, {UNET: 1.0})[UNET]
    # The LoCon pair is a 3x3 conv to RANK channels followed by a 1x1 conv: the patched layer must equal that sum.
    x = torch.randn(1, layer.in_channels, 6, 6, generator=gen)
    lora_out = nn.functional.conv2d(nn.functional.conv2d(x, down, padding=1), up) * (4.0 / RANK)
    want = layer(x) + lora_out
    assert torch.allclose(patched.get_submodule(name)(x), want, atol=1e-5)


def test_unmapped_keys_are_reported_by_name(unet: nn.Module) -> None:
    good = "lora_unet_down_blocks_0_resnets_0_conv1"
    sd = {
        good + ".lora_down.weight": torch.zeros(RANK, 8, 3, 3),
        good + ".lora_up.weight": torch.zeros(8, RANK, 1, 1),
        "lora_unet_no_such_block_7.lora_down.weight": torch.zeros(RANK, 8),
        "lora_unet_no_such_block_7.lora_up.weight": torch.zeros(8, RANK),
        "lora_unet_conv_in.hada_w1_a": torch.zeros(8, 2),
        "lora_unet_conv_out.lora_up.weight": torch.zeros(4, RANK, 1, 1),
        "lora_unet_time_embedding_linear_1.lora_down.weight": torch.zeros(RANK, 99),
        "lora_unet_time_embedding_linear_1.lora_up.weight": torch.zeros(32, RANK),
        "some_metadata_tensor": torch.zeros(1),
    }
    match = match_lora(sd, {UNET: unet})
    assert [p.target.module for p in match.patches] == ["down_blocks.0.resnets.0.conv1"]
    assert set(match.unmapped) == set(sd) - {good + ".lora_down.weight", good + ".lora_up.weight"}
    assert "shape" in match.unmapped["lora_unet_time_embedding_linear_1.lora_down.weight"]


def _full_lora(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for name, layer in _layers(model).items():
        stem = "lora_unet_" + name.replace(".", "_")
        sd[stem + ".lora_down.weight"], sd[stem + ".lora_up.weight"] = _lora_pair(layer.weight, gen)
    return sd


def test_base_is_bit_identical_after_patching_and_shares_unpatched_tensors() -> None:
    unet = tiny_unet()
    inputs = unet_inputs()
    state = {k: v.clone() for k, v in unet.state_dict().items()}
    with torch.no_grad():
        before = unet(**inputs).sample
        match = match_lora(_full_lora(unet, 1), {UNET: unet})
        for strength in (1.0, -0.7, 2.0):
            patched = apply_patches({UNET: unet}, match.patches, {UNET: strength})[UNET]
            assert not torch.equal(patched(**inputs).sample, before)
            del patched
        after = unet(**inputs).sample
    assert torch.equal(before, after)
    assert all(torch.equal(state[k], v) for k, v in unet.state_dict().items())
    one = match_lora({k: v for k, v in _full_lora(unet, 1).items() if "conv_in" in k}, {UNET: unet})
    patched = apply_patches({UNET: unet}, one.patches, {UNET: 1.0})[UNET]
    assert patched.conv_in.weight is not unet.conv_in.weight
    assert patched.conv_out.weight is unet.conv_out.weight
    assert patched.down_blocks[0].resnets[0].norm1.bias is unet.down_blocks[0].resnets[0].norm1.bias


def test_strength_zero_is_the_base_and_negative_undoes_positive() -> None:
    unet = tiny_unet()
    inputs = unet_inputs()
    match = match_lora(_full_lora(unet, 2), {UNET: unet})
    assert apply_patches({UNET: unet}, match.patches, {UNET: 0.0})[UNET] is unet
    plus = apply_patches({UNET: unet}, match.patches, {UNET: 0.8})[UNET]
    back = apply_patches({UNET: plus}, match.patches, {UNET: -0.8})[UNET]
    with torch.no_grad():
        assert torch.allclose(back(**inputs).sample, unet(**inputs).sample, atol=1e-5)
    layer = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    base_w = unet.get_submodule(layer).weight
    minus = apply_patches({UNET: unet}, match.patches, {UNET: -0.8})[UNET]
    assert torch.allclose(
        minus.get_submodule(layer).weight - base_w, -(plus.get_submodule(layer).weight - base_w), atol=1e-7
    )


def test_stacking_two_loras_adds_their_deltas() -> None:
    unet = tiny_unet()
    a = match_lora(_full_lora(unet, 3), {UNET: unet}).patches
    b = match_lora(_full_lora(unet, 4), {UNET: unet}).patches
    only_a = apply_patches({UNET: unet}, a, {UNET: 1.0})[UNET]
    only_b = apply_patches({UNET: unet}, b, {UNET: 0.5})[UNET]
    both = apply_patches({UNET: only_a}, b, {UNET: 0.5})[UNET]
    for name in _layers(unet):
        base = unet.get_submodule(name).weight
        delta_a = only_a.get_submodule(name).weight - base
        delta_b = only_b.get_submodule(name).weight - base
        assert torch.allclose(both.get_submodule(name).weight, base + delta_a + delta_b, atol=1e-6)


def test_shared_copy_shares_every_tensor() -> None:
    clip = tiny_clip()
    clone = shared_copy(clip)
    assert clone is not clip
    assert all(a is b for a, b in zip(clip.parameters(), clone.parameters(), strict=True))


def test_whole_differences_and_the_reference_spellings() -> None:
    unet, clip = tiny_unet(), tiny_clip()
    names = ldm_module_names(unet)
    linear = next(n for n, m in unet.named_modules() if isinstance(m, nn.Linear) and m.bias is not None)
    norm = next(n for n, m in unet.named_modules() if isinstance(m, nn.GroupNorm))
    q_proj = next(n for n, m in clip.named_modules() if n.endswith("q_proj"))
    layer, norm_layer = unet.get_submodule(linear), unet.get_submodule(norm)
    gen = torch.Generator().manual_seed(1)
    sd = {
        f"diffusion_model.{names[linear]}.diff": torch.randn(layer.weight.shape, generator=gen),
        f"diffusion_model.{names[linear]}.diff_b": torch.randn(layer.bias.shape, generator=gen),
        f"diffusion_model.{names[norm]}.diff": torch.randn(norm_layer.weight.shape, generator=gen),
        f"text_encoders.clip_l.transformer.{_te(q_proj)}.diff_b": torch.ones(clip.get_submodule(q_proj).bias.shape),
        f"diffusion_model.{names[linear]}.lora_up.weight": torch.zeros(3, 1),  # a wrong pair is named, not dropped
        f"diffusion_model.{names[linear]}.lora_down.weight": torch.zeros(1, 5),
        f"diffusion_model.{names[norm]}.diff_b": torch.zeros(7),
    }
    match = match_lora(sd, {UNET: unet, TE1: clip})
    assert len(match.patches) == 4
    assert set(match.unmapped) == {
        f"diffusion_model.{names[linear]}.lora_up.weight",
        f"diffusion_model.{names[linear]}.lora_down.weight",
        f"diffusion_model.{names[norm]}.diff_b",
    }
    out = apply_patches({UNET: unet, TE1: clip}, match.patches, {UNET: 0.5, TE1: 1.0})
    patched = out[UNET].get_submodule(linear)
    assert torch.allclose(patched.weight, layer.weight + 0.5 * sd[f"diffusion_model.{names[linear]}.diff"])
    assert torch.allclose(patched.bias, layer.bias + 0.5 * sd[f"diffusion_model.{names[linear]}.diff_b"])
    assert torch.allclose(
        out[UNET].get_submodule(norm).weight, norm_layer.weight + 0.5 * sd[f"diffusion_model.{names[norm]}.diff"]
    )
    assert torch.equal(out[TE1].get_submodule(q_proj).bias, clip.get_submodule(q_proj).bias + 1)
    assert not torch.equal(layer.weight, patched.weight)  # the input modules are untouched


def test_low_rank_extraction_is_exact_for_low_rank_differences() -> None:
    from diffusion.lora_extract import low_rank

    gen = torch.Generator().manual_seed(2)
    diff = torch.randn(6, 2, generator=gen) @ torch.randn(2, 9, generator=gen)
    up, down = low_rank(diff, 4)
    assert up.shape == (6, 4) and down.shape == (4, 9) and torch.allclose(up @ down, diff, atol=1e-5)
    conv = torch.randn(5, 1, generator=gen) @ torch.randn(1, 3 * 3 * 3, generator=gen)
    up, down = low_rank(conv.reshape(5, 3, 3, 3), 1)
    assert up.shape == (5, 1, 1, 1) and down.shape == (1, 3, 3, 3)
    assert torch.allclose(up.flatten(1) @ down.flatten(1), conv, atol=1e-5)
