"""Hypernetwork files (A1111 pickle and its safetensors flattening) and the attention patch they make."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from diffusion.hypernetwork import HypernetworkError, HypernetworkPatch, load_hypernetwork
from tests.diffusion.tiny_hypernetworks import mlp_state, write_pt
from tests.diffusion.tiny_lora_models import tiny_unet, unet_inputs

CONTEXT = 12  # no attention layer of the tiny UNets is this wide: only cross-attention sees the context width


def narrow_context_unet() -> nn.Module:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=CONTEXT,
        attention_head_dim=2,
        norm_num_groups=4,
        sample_size=8,
    )
    with torch.no_grad():
        for param in unet.parameters():
            param.normal_(0, 0.2)
    return unet.eval()


def _unet_out(unet: nn.Module, patch: HypernetworkPatch | None, inputs: dict) -> torch.Tensor:
    handles = patch.attach(unet) if patch is not None else []
    try:
        with torch.no_grad():
            return unet(**inputs).sample
    finally:
        for handle in handles:
            handle.remove()


def test_zeroed_output_layers_change_nothing_bit_for_bit(tmp_path: Path) -> None:
    unet, inputs = tiny_unet(), unet_inputs()
    context = inputs["encoder_hidden_states"].shape[-1]
    nets = load_hypernetwork(write_pt(tmp_path / "zero.pt", {context: 1, 32: 2}, zero_out=True))
    assert torch.equal(_unet_out(unet, HypernetworkPatch(nets, 1.0), inputs), _unet_out(unet, None, inputs))


def test_cross_attention_context_is_rewritten_for_keys_and_values(tmp_path: Path) -> None:
    unet = narrow_context_unet()
    context = torch.randn(1, 5, CONTEXT, generator=torch.Generator().manual_seed(2))
    inputs = {**unet_inputs(), "encoder_hidden_states": context}
    width = CONTEXT
    assert all(m.to_q.in_features != width for m in unet.modules() if hasattr(m, "to_q"))  # only attn2 sees it
    nets = load_hypernetwork(write_pt(tmp_path / "ctx.pt", {width: 4}, same=True))
    key_mlp = nets[width][0]
    with torch.no_grad():
        moved = context + key_mlp(context) * 0.7
    want = _unet_out(unet, None, {**inputs, "encoder_hidden_states": moved})
    got = _unet_out(unet, HypernetworkPatch(nets, 0.7), inputs)
    assert torch.allclose(got, want, atol=1e-6) and not torch.allclose(got, _unet_out(unet, None, inputs))
    assert not unet._forward_pre_hooks and all(not m._forward_pre_hooks for m in unet.modules())  # hooks removed


def test_layer_norm_activations_and_the_safetensors_flattening(tmp_path: Path) -> None:
    state = {0: mlp_state(8, 1, layer_norm=True), 1: mlp_state(8, 2, layer_norm=True)}
    torch.save({8: [state[0], state[1]], "activation_func": "tanh", "is_layer_norm": True}, tmp_path / "ln.pt")
    nets = load_hypernetwork(tmp_path / "ln.pt")
    kinds = [type(m) for m in nets[8][0]]
    assert kinds == [nn.Linear, nn.Tanh, nn.LayerNorm, nn.Linear]  # no activation after the last layer
    flat = {f"8.{i}.{k}": v for i, s in state.items() for k, v in s.items()}
    save_file(flat, tmp_path / "ln.safetensors", metadata={"activation_func": "tanh", "is_layer_norm": "True"})
    again = load_hypernetwork(tmp_path / "ln.safetensors")
    x = torch.randn(2, 8)
    with torch.no_grad():
        assert torch.equal(again[8][1](x), nets[8][1](x))


def test_bad_files_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(HypernetworkError, match="activation 'gelu2'"):
        load_hypernetwork(write_pt(tmp_path / "act.pt", {8: 1}, activation_func="gelu2"))
    torch.save({"name": "empty"}, tmp_path / "empty.pt")
    with pytest.raises(HypernetworkError, match="no MLP pairs"):
        load_hypernetwork(tmp_path / "empty.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a pickle")
    with pytest.raises(HypernetworkError, match=r"junk\.pt: not a readable hypernetwork"):
        load_hypernetwork(tmp_path / "junk.pt")
