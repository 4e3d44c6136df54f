"""Tiny random-weight FLUX and SD3 ControlNets in the files' real layouts, sized for the demo transformers
(diffusion.tiny_dit): FLUX in diffusers' FluxControlNetModel names (InstantX, Shakker Union with a mode embedder),
SD3 in diffusers' SD3ControlNetModel names (InstantX) and Stability's SD3.5 single-file names (fused q/k/v,
`adaLN_modulation`, a `control_type` tensor). Random `controlnet_blocks` (real files start them at zero) make their
effect visible."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from diffusion.tiny import random_weights
from diffusion.tiny_dit import TEXT_WIDTH, tiny_flux_arch

SD3_HIDDEN = 64  # the demo SD3 transformer's width


def _state(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in random_weights(module, seed).items()}


def flux_controlnet_state(double: int = 1, single: int = 1, modes: int | None = None, seed: int = 11) -> dict:
    from diffusers import FluxControlNetModel

    config = tiny_flux_arch().config() | {"num_layers": double, "num_single_layers": single, "num_mode": modes}
    with torch.device("meta"):
        module = FluxControlNetModel(**config)
    return _state(module, seed)


def sd3_controlnet_state(layers: int = 1, seed: int = 12) -> dict:
    """InstantX-style: its own patch embedding and prompt stream (64-wide, one 64-wide head)."""
    from diffusers import SD3ControlNetModel

    with torch.device("meta"):
        module = SD3ControlNetModel(
            patch_size=2, in_channels=16, num_layers=layers, attention_head_dim=64, num_attention_heads=1,
            joint_attention_dim=2 * TEXT_WIDTH, caption_projection_dim=SD3_HIDDEN, pooled_projection_dim=2 * TEXT_WIDTH,
            out_channels=16, pos_embed_max_size=64,
        )  # fmt: skip
    return _state(module, seed)


def sd35_controlnet_state(layers: int = 2, control_type: int = 2, seed: int = 13) -> dict:
    """Stability's SD3.5 layout, written from diffusers' module by the inverse of its published conversion."""
    from diffusers import SD3ControlNetModel

    with torch.device("meta"):
        module = SD3ControlNetModel(
            patch_size=2, in_channels=16, num_layers=layers, attention_head_dim=64, num_attention_heads=1,
            joint_attention_dim=None, caption_projection_dim=SD3_HIDDEN, pooled_projection_dim=2 * TEXT_WIDTH,
            out_channels=16, pos_embed_max_size=None, pos_embed_type=None, use_pos_embed=False,
            force_zeros_for_pooled_projection=False,
        )  # fmt: skip
    state = _state(module, seed)
    names = {"attn.to_out.0": "attn.proj", "ff.net.0.proj": "mlp.fc1", "ff.net.2": "mlp.fc2",
             "norm1.linear": "adaLN_modulation.1"}  # fmt: skip
    out: dict[str, torch.Tensor] = {"control_type": torch.tensor([float(control_type)])}
    for key, tensor in state.items():
        for ours, theirs in names.items():
            key = key.replace(f".{ours}.", f".{theirs}.")
        if ".attn.to_q." in key:
            parts = [state[key.replace(".to_q.", f".{n}.")] for n in ("to_q", "to_k", "to_v")]
            out[key.replace(".attn.to_q.", ".attn.qkv.")] = torch.cat(parts).contiguous()
        elif ".attn.to_k." not in key and ".attn.to_v." not in key:
            out[key] = tensor
    return out


def write(path: Path, state: dict[str, torch.Tensor]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path
