"""Loom's models written back as single-file LDM-layout tensors (what checkpoints in the wild hold), with the
safetensors metadata the ecosystem reads (`modelspec.*`, and the workflow that made the file)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from diffusion.convert import hf_to_openclip, text_table, to_ldm, vae_table
from diffusion.detect import UNET_PREFIX, VAE_PREFIX, TextArch, VAEArch
from diffusion.ldm_names import ldm_state_dict_names

# modelspec architecture names of the families Loom loads (Stability AI's model metadata spec)
ARCHITECTURES = {"sd1": "stable-diffusion-v1", "sd2": "stable-diffusion-v2-512", "sdxl": "stable-diffusion-xl-v1-base"}


def unet_state(unet: nn.Module, prefix: str = UNET_PREFIX) -> dict[str, torch.Tensor]:
    """A diffusers UNet's tensors under their LDM names (read from its block structure)."""
    names = ldm_state_dict_names(unet)
    state = unet.state_dict()
    missing = [k for k in state if k not in names]
    if missing:
        raise ValueError(f"the UNet has tensors with no LDM name, so it cannot be saved: {', '.join(missing[:5])}")
    return {prefix + names[k]: v for k, v in state.items()}


def vae_arch(vae: nn.Module, scaling_factor: float) -> VAEArch:
    config = vae.config
    return VAEArch(
        config.in_channels,
        config.latent_channels,
        tuple(config.block_out_channels),
        config.layers_per_block,
        scaling_factor,
    )


def vae_state(vae: nn.Module, arch: VAEArch, prefix: str = VAE_PREFIX) -> dict[str, torch.Tensor]:
    """An AutoencoderKL's tensors under LDM names; the mid-block attention projections become 1x1 convs again."""
    state = dict(vae.state_dict())
    for key, tensor in state.items():
        if ".mid_block.attentions.0." in key and key.endswith(".weight") and "group_norm" not in key:
            state[key] = tensor[:, :, None, None]
    return dict(to_ldm(state, vae_table(arch), prefix))


def text_state(module: nn.Module, arch: TextArch) -> dict[str, torch.Tensor]:
    """A CLIP text model's tensors under the checkpoint's names for that encoder (transformers or OpenCLIP)."""
    from diffusion.loader import canonical_text_keys

    state = canonical_text_keys(module)
    if arch.layout == "openclip":
        return {arch.prefix + k: v for k, v in hf_to_openclip(state, arch).items()}
    return dict(to_ldm(state, text_table(arch), arch.prefix))


def model_metadata(family: str, prediction: str, title: str, extra: Mapping[str, str]) -> dict[str, str]:
    meta = {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.implementation": "sgm",
        "modelspec.title": title,
    }
    if family in ARCHITECTURES:
        meta["modelspec.architecture"] = ARCHITECTURES[family]
    if prediction == "v":
        meta["modelspec.predict_key"] = "v"
    return meta | dict(extra)


def lora_metadata(family: str, title: str, rank: int, lora_type: str) -> dict[str, str]:
    """A LoRA file's metadata: modelspec's architecture with its `/lora` suffix, and the network's rank."""
    meta = {"modelspec.sai_model_spec": "1.0.0", "modelspec.title": title, "ss_network_dim": str(rank)}
    if family in ARCHITECTURES:
        meta["modelspec.architecture"] = f"{ARCHITECTURES[family]}/lora"
    return meta | {"ss_network_module": "networks.lora", "loom.lora_type": lora_type}


def encode(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]) -> bytes:
    """safetensors bytes of contiguous CPU copies (tensors that shared storage are stored apart)."""
    from safetensors.torch import save

    plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    return save(plain, metadata={k: str(v) for k, v in metadata.items()})
