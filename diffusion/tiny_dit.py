"""Tiny random-weight FLUX and SD3 stand-ins in the files' real layouts: the transformers (reference layout),
CLIP-L (transformers' names, as `clip_l.safetensors`), CLIP-G (OpenCLIP's bigG names), T5 (as
`t5xxl_*.safetensors`) and the 16-channel VAE (LDM layout, no quant convs). Tests write them with torch;
`dit_demo_layouts` derives the bundled demo tables from them."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from diffusion.checkpoint import assign_weights
from diffusion.detect import UNET_PREFIX, VAEArch, detect_text, family_defaults
from diffusion.flux import FluxArch
from diffusion.flux import to_reference as flux_to_reference
from diffusion.save import vae_state
from diffusion.sd3 import SD3Arch
from diffusion.sd3 import to_reference as sd3_to_reference
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


def tiny_sd3_arch(
    depth: int = 2, hidden: int = 64, dual: tuple[int, ...] = (), qk_norm: bool = False, prefix: str = ""
) -> SD3Arch:
    """Joint width and pooled width 64: two 32-wide CLIPs side by side (T5 padded to them)."""
    return SD3Arch(prefix, "reference", 16, 16, 2, hidden, hidden // depth, depth, 2 * TEXT_WIDTH, 2 * TEXT_WIDTH, 64,
                   dual, qk_norm)  # fmt: skip


def tiny_t5_arch() -> T5Arch:
    return T5Arch(prefix="", vocab=T5_VOCAB, d_model=TEXT_WIDTH, d_kv=8, d_ff=64, layers=2, heads=4, buckets=32,
                  gated=True)  # fmt: skip


def tiny_vae_arch(family: str = "flux") -> VAEArch:
    d = family_defaults(family)
    return VAEArch(3, 16, (32, 32, 32, 32), 1, d["vae_scaling_factor"], False, d["vae_shift_factor"])


def _filled(module: nn.Module, seed: int) -> nn.Module:
    return assign_weights(module, random_weights(module, seed), "tiny", torch.float32)


def flux_file_state(arch: FluxArch, seed: int = 0) -> dict[str, torch.Tensor]:
    from diffusion.dit_loader import build_flux

    module = _filled(build_flux(arch), seed)
    return {k: v.contiguous() for k, v in flux_to_reference(module.state_dict(), arch, arch.prefix).items()}


def clip_file_state(encoder: str = "clip_l", seed: int = 0, hidden: int = TEXT_WIDTH) -> dict[str, torch.Tensor]:
    """CLIP-L (transformers' names: `text_model.*`, `text_projection.weight`) or CLIP-G (OpenCLIP's bigG names:
    `transformer.resblocks.*`, `text_projection`), each with its projection."""
    from diffusion.loader import build_text, canonical_text_keys
    from diffusion.save import text_state

    spec = {s["name"]: s for s in family_defaults("sd3")["text_encoders"]}[encoder]
    t = "transformer.text_model."
    shapes = {
        f"{t}embeddings.token_embedding.weight": (49408, hidden),
        f"{t}embeddings.position_embedding.weight": (77, hidden),
        "transformer.text_projection.weight": (hidden, hidden),
    } | {f"{t}encoder.layers.{i}.mlp.fc1.weight": (hidden * 2, hidden) for i in range(2)}
    arch = replace(detect_text(shapes, "", dict(spec, layout="hf")), projection_dim=hidden)
    module = _filled(build_text(arch), seed)
    if spec["layout"] == "openclip":
        state = text_state(module, replace(arch, layout="openclip"))
        return {k.removeprefix("model."): v.contiguous() for k, v in state.items()}
    return {k: v.contiguous() for k, v in canonical_text_keys(module).items() if not k.endswith("position_ids")}


def sd3_file_state(arch: SD3Arch, seed: int = 0) -> dict[str, torch.Tensor]:
    from diffusion.dit_loader import build_sd3

    module = _filled(build_sd3(arch), seed)
    return {k: v.contiguous() for k, v in sd3_to_reference(module.state_dict(), arch, arch.prefix).items()}


def t5_file_state(arch: T5Arch | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """T5 as creators' files hold it: `shared.weight` and `encoder.*`, without the tied copy."""
    from diffusion import offline
    from diffusion.checkpoint import build_empty

    arch = arch or tiny_t5_arch()
    tf = offline.transformers()
    module = _filled(build_empty(lambda: tf.T5EncoderModel(tf.T5Config(**arch.config()))), seed)
    return {k: v.contiguous() for k, v in module.state_dict().items() if k != "encoder.embed_tokens.weight"}


def vae_file_state(seed: int = 0, family: str = "flux") -> dict[str, torch.Tensor]:
    from diffusion.loader import build_vae

    arch = tiny_vae_arch(family)
    module = _filled(build_vae(arch), seed)
    return {k: v.contiguous() for k, v in vae_state(module, arch, "").items()}


def dit_demo_layouts() -> dict[str, dict[str, list[int]]]:
    """Demo file name -> name -> shape, for the FLUX and SD3 demo files (see diffusion/demo_dit.py)."""
    from diffusion.demo_dit import DEMO_CLIP_G, DEMO_CLIP_L, DEMO_FLUX, DEMO_FLUX_VAE, DEMO_SD3, DEMO_SD3_VAE, DEMO_T5

    states = {
        DEMO_FLUX: flux_file_state(tiny_flux_arch()),
        DEMO_CLIP_L: clip_file_state("clip_l"),
        DEMO_T5: t5_file_state(),
        DEMO_FLUX_VAE: vae_file_state(),
        DEMO_SD3: sd3_file_state(tiny_sd3_arch(prefix=UNET_PREFIX)),
        DEMO_CLIP_G: clip_file_state("clip_g"),
        DEMO_SD3_VAE: vae_file_state(family="sd3"),
    }
    return {name: {k: list(v.shape) for k, v in sorted(s.items())} for name, s in states.items()}
