"""A GLIGEN file for a given UNet, in the LDM key layout, with seeded weights and chosen gates."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from diffusion.gligen import GatedSelfAttention, PositionNet, _blocks


def gligen_tensors(unet: nn.Module, phrase_dim: int, gate: float, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    token_dim = int(unet.config.cross_attention_dim)
    tensors = {f"position_net.{k}": v for k, v in PositionNet(phrase_dim, token_dim).state_dict().items()}
    tensors["position_net.null_positive_feature"] = torch.randn(phrase_dim) * 0.1
    tensors["position_net.null_position_feature"] = torch.randn(tensors["position_net.null_position_feature"].shape)
    for name, block in _blocks(unet).items():
        fuser = GatedSelfAttention(int(block.norm1.normalized_shape[0]), token_dim)
        with torch.no_grad():
            fuser.alpha_attn.fill_(gate)
            fuser.alpha_dense.fill_(gate)
        tensors |= {f"{name}.fuser.{k}": v for k, v in fuser.state_dict().items()}
    return tensors


def write_gligen(path: Path, unet: nn.Module, phrase_dim: int, gate: float) -> Path:
    save_file({k: v.contiguous() for k, v in gligen_tensors(unet, phrase_dim, gate).items()}, path)
    return path
