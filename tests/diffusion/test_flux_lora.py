"""FLUX LoRAs in kohya, reference (BFL) and diffusers/PEFT key layouts: the fused reference layers (qkv, the single
blocks' linear1, the final modulation stored the other way round) patch diffusers' split layers.

The expected model is built independently of the LoRA code: the deltas are added to the reference-layout weights,
which then go through the checked reference -> diffusers conversion."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from diffusion.checkpoint import assign_weights
from diffusion.dit_loader import build_flux
from diffusion.flux import FluxArch, flux_table, to_diffusers
from diffusion.lora import apply_patches, match_lora
from diffusion.lora_keys import UNET
from diffusion.tiny_dit import flux_file_state, tiny_flux_arch

RANK = 3
Deltas = dict[str, tuple[torch.Tensor, torch.Tensor]]  # reference layer -> (down, up)


def _module(arch: FluxArch, state: dict[str, torch.Tensor]) -> nn.Module:
    return assign_weights(build_flux(arch), to_diffusers(state, arch), "flux", torch.float32)


def _deltas(state: dict[str, torch.Tensor]) -> Deltas:
    """One rank-3 pair per linear layer of the reference layout."""
    gen = torch.Generator().manual_seed(5)
    out: Deltas = {}
    for key, tensor in sorted(state.items()):
        if key.endswith(".weight") and tensor.ndim == 2:
            down = torch.randn(RANK, tensor.shape[1], generator=gen) * 0.05
            up = torch.randn(tensor.shape[0], RANK, generator=gen) * 0.05
            out[key.removesuffix(".weight")] = (down, up)
    return out


def _kohya(deltas: Deltas) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {}
    for layer, (down, up) in deltas.items():
        stem = "lora_unet_" + layer.replace(".", "_")
        sd |= {f"{stem}.lora_down.weight": down, f"{stem}.lora_up.weight": up * 2, f"{stem}.alpha": torch.tensor(1.5)}
    return sd  # alpha / rank = 0.5 halves the doubled up weights


def _reference(deltas: Deltas) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {}
    for layer, (down, up) in deltas.items():
        sd |= {f"diffusion_model.{layer}.lora_A.weight": down, f"diffusion_model.{layer}.lora_B.weight": up}
    return sd


def _peft(deltas: Deltas, arch: FluxArch) -> dict[str, torch.Tensor]:
    """The same deltas on diffusers' layers: a fused layer's up split by rows, the final modulation's halves
    swapped."""
    sd: dict[str, torch.Tensor] = {}
    for rule in flux_table(arch):
        layer = rule.ref.removesuffix(".weight")
        if layer not in deltas:
            continue
        down, up = deltas[layer]
        if rule.swap:
            first, second = up.chunk(2)
            up = torch.cat([second, first])
        pieces = up.split(list(rule.sizes)) if rule.sizes else (up,)
        for part, piece in zip(rule.parts, pieces, strict=True):
            stem = "transformer." + part.removesuffix(".weight")
            sd |= {f"{stem}.lora_A.weight": down, f"{stem}.lora_B.weight": piece}
    return sd


def _inputs(arch: FluxArch) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    ids = torch.zeros(6, 3)
    ids[:, 1], ids[:, 2] = torch.arange(6) // 3, torch.arange(6) % 3
    return {
        "hidden_states": torch.randn(1, 6, arch.latent_channels * 4, generator=gen),
        "encoder_hidden_states": torch.randn(1, 4, arch.context_dim, generator=gen),
        "pooled_projections": torch.randn(1, arch.pooled_dim, generator=gen),
        "timestep": torch.tensor([0.6]),
        "guidance": torch.tensor([3.5]),
        "img_ids": ids,
        "txt_ids": torch.zeros(4, 3),
    }


def _run(module: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return module(**inputs).sample


@pytest.fixture(scope="module")
def setup() -> tuple[FluxArch, dict[str, torch.Tensor], Deltas]:
    arch = tiny_flux_arch()
    state = flux_file_state(arch)
    return arch, state, _deltas(state)


@pytest.mark.parametrize("layout", ["kohya", "reference", "peft"])
def test_each_layout_patches_what_the_same_deltas_on_the_reference_weights_give(
    setup: tuple[FluxArch, dict[str, torch.Tensor], Deltas], layout: str
) -> None:
    arch, state, deltas = setup
    makers: dict[str, Callable[[Deltas], dict[str, torch.Tensor]]] = {
        "kohya": _kohya,
        "reference": _reference,
        "peft": lambda d: _peft(d, arch),
    }
    patched_state = dict(state)
    for layer, (down, up) in deltas.items():
        patched_state[f"{layer}.weight"] = state[f"{layer}.weight"] + 0.8 * up @ down
    expected = _run(_module(arch, patched_state), _inputs(arch))

    base = _module(arch, state)
    snapshot = {k: v.clone() for k, v in base.state_dict().items()}
    match = match_lora(makers[layout](deltas), {UNET: base})
    assert match.unmapped == {}
    split = {p.target.module.rsplit(".", 1)[-1] for p in match.patches if p.target.rows is not None}
    assert split == set() if layout == "peft" else {"to_q", "to_k", "to_v", "add_q_proj", "proj_mlp"} <= split
    patched = apply_patches({UNET: base}, match.patches, {UNET: 0.8})[UNET]
    assert patched is not base
    torch.testing.assert_close(_run(patched, _inputs(arch)), expected, rtol=1e-4, atol=1e-5)
    assert all(torch.equal(v, snapshot[k]) for k, v in base.state_dict().items())


def test_strength_zero_is_the_base_model_bit_for_bit(setup: tuple[FluxArch, dict[str, torch.Tensor], Deltas]) -> None:
    arch, state, deltas = setup
    base = _module(arch, state)
    before = _run(base, _inputs(arch))
    match = match_lora(_kohya(deltas), {UNET: base})
    assert match.patches
    unchanged = apply_patches({UNET: base}, match.patches, {UNET: 0.0})[UNET]
    assert unchanged is base
    assert torch.equal(_run(unchanged, _inputs(arch)), before)


def test_keys_that_fit_no_layer_are_reported_with_why(
    setup: tuple[FluxArch, dict[str, torch.Tensor], Deltas],
) -> None:
    arch, state, deltas = setup
    sd = _kohya(deltas)
    sd["lora_unet_double_blocks_9_img_attn_qkv.lora_down.weight"] = torch.zeros(RANK, arch.hidden)
    sd["lora_unet_double_blocks_9_img_attn_qkv.lora_up.weight"] = torch.zeros(3 * arch.hidden, RANK)
    too_short = "lora_unet_single_blocks_0_linear1.lora_up.weight"
    sd[too_short] = sd[too_short][: 3 * arch.hidden]  # q, k, v but no MLP rows
    match = match_lora(sd, {UNET: _module(arch, state)})
    assert match.unmapped["lora_unet_double_blocks_9_img_attn_qkv.lora_up.weight"] == "no such layer in the model"
    assert match.unmapped[too_short].startswith("shape does not fit")
    assert not any(p.target.module.startswith("single_transformer_blocks.0.") and p.target.rows for p in match.patches)
