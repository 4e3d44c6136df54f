"""Tiny random-weight FLUX stand-ins in the files' real layouts: the transformer (reference layout), CLIP-L
(transformers' names, as `clip_l.safetensors`), T5 (as `t5xxl_*.safetensors`) and the 16-channel VAE (LDM layout,
no quant convs). Tests write them with torch; `dit_demo_layouts` derives the bundled demo tables from them."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from diffusion.checkpoint import assign_weights
from diffusion.detect import VAEArch, detect_text, family_defaults
from diffusion.flux import FluxArch
from diffusion.flux import to_reference as flux_to_reference
from diffusion.save import vae_state
from diffusion.t5 import T5Arch
from diffusion.tiny import random_weights

TEXT_WIDTH = 32
T5_VOCAB = 128


def tiny_flux_arch(guidance: bool = True, hidden: int = 64, double: int = 2, single: int = 2) -> FluxArch:
    return FluxArch(
        prefix="",
        layout="reference",
        latent_channels=16,
        hidden=hidden,
        head_dim=32,
        double_blocks=double,
        single_blocks=single,
        context_dim=TEXT_WIDTH,
        pooled_dim=TEXT_WIDTH,
        guidance=guidance,
    )


def tiny_t5_arch() -> T5Arch:
    return T5Arch(prefix="", vocab=T5_VOCAB, d_model=TEXT_WIDTH, d_kv=8, d_ff=64, layers=2, heads=4, buckets=32,
                  gated=True)  # fmt: skip


def tiny_vae_arch() -> VAEArch:
    d = family_defaults("flux")
    return VAEArch(3, 16, (32, 32, 32, 32), 1, d["vae_scaling_factor"], False, d["vae_shift_factor"])


def _filled(module: nn.Module, seed: int) -> nn.Module:
    return assign_weights(module, random_weights(module, seed), "tiny", torch.float32)


def flux_file_state(arch: FluxArch, seed: int = 0) -> dict[str, torch.Tensor]:
    from diffusion.dit_loader import build_flux

    module = _filled(build_flux(arch), seed)
    return {k: v.contiguous() for k, v in flux_to_reference(module.state_dict(), arch, arch.prefix).items()}


def clip_l_file_state(seed: int = 0, hidden: int = TEXT_WIDTH) -> dict[str, torch.Tensor]:
    """CLIP-L with its projection, under transformers' names (`text_model.*`, `text_projection.weight`)."""
    from diffusion.loader import build_text, canonical_text_keys

    spec = family_defaults("sd3")["text_encoders"][0]
    t = "transformer.text_model."
    shapes = {
        f"{t}embeddings.token_embedding.weight": (49408, hidden),
        f"{t}embeddings.position_embedding.weight": (77, hidden),
        "transformer.text_projection.weight": (hidden, hidden),
    } | {f"{t}encoder.layers.{i}.mlp.fc1.weight": (hidden * 2, hidden) for i in range(2)}
    arch = replace(detect_text(shapes, "", spec), projection_dim=hidden)
    module = _filled(build_text(arch), seed)
    return {k: v.contiguous() for k, v in canonical_text_keys(module).items() if not k.endswith("position_ids")}


def t5_file_state(arch: T5Arch | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """T5 as creators' files hold it: `shared.weight` and `encoder.*`, without the tied copy."""
    from diffusion import offline
    from diffusion.checkpoint import build_empty

    arch = arch or tiny_t5_arch()
    tf = offline.transformers()
    module = _filled(build_empty(lambda: tf.T5EncoderModel(tf.T5Config(**arch.config()))), seed)
    return {k: v.contiguous() for k, v in module.state_dict().items() if k != "encoder.embed_tokens.weight"}


def vae_file_state(seed: int = 0) -> dict[str, torch.Tensor]:
    from diffusion.loader import build_vae

    arch = tiny_vae_arch()
    module = _filled(build_vae(arch), seed)
    return {k: v.contiguous() for k, v in vae_state(module, arch, "").items()}


def dit_demo_layouts() -> dict[str, dict[str, list[int]]]:
    """Demo file name -> name -> shape, for the FLUX demo files (see diffusion/demo_dit.py)."""
    from diffusion.demo_dit import DEMO_CLIP_L, DEMO_FLUX, DEMO_FLUX_VAE, DEMO_T5

    states = {
        DEMO_FLUX: flux_file_state(tiny_flux_arch()),
        DEMO_CLIP_L: clip_l_file_state(),
        DEMO_T5: t5_file_state(),
        DEMO_FLUX_VAE: vae_file_state(),
    }
    return {name: {k: list(v.shape) for k, v in sorted(s.items())} for name, s in states.items()}
