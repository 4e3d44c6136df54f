"""Tiny random-weight FLUX and SD3 stand-ins in the files' real layouts: the transformers (reference layout),
CLIP-L (transformers' names, as `clip_l.safetensors`), CLIP-G (OpenCLIP's bigG names), T5 (as
`t5xxl_*.safetensors`), the 16-channel VAE (LDM layout, no quant convs), and for FLUX Redux a SigLIP vision encoder
(as `sigclip_vision_patch14_384.safetensors`) and the Redux model (`redux_up` / `redux_down`). Tests write them
with torch; `dit_demo_layouts` derives the bundled demo tables from them."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from diffusion.checkpoint import assign_weights
from diffusion.clip_vision import VisionArch, vision_config
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
# A SigLIP encoder like so400m-patch14-384 in miniature: 42 px, 3 x 3 patches of 14 px (so400m: 27 x 27 of 14).
TINY_SIGLIP = VisionArch(
    name="SigLIP (32 wide) patch14 42",
    hidden=32,
    layers=3,
    intermediate=48,
    heads=1,
    patch=14,
    image_size=42,
    projection_dim=0,
    hidden_act="gelu_pytorch_tanh",
    family="siglip",
)


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


def siglip_file_state(seed: int = 0, head: bool = True) -> dict[str, torch.Tensor]:
    """The tiny SigLIP encoder's tensors as the single-file SigLIP encoders hold them: transformers'
    SiglipVisionModel names under `vision_model.`, with (`head`) the attention-pooling head
    (`vision_model.head.probe`, `.attention.*`, `.layernorm.*`, `.mlp.*`) or without it."""
    from transformers import SiglipVisionModel

    config = vision_config(TINY_SIGLIP)
    config.vision_use_head = head
    with torch.device("meta"):
        module = SiglipVisionModel(config)
    return {f"vision_model.{k}": v.contiguous() for k, v in random_weights(module, seed).items()}


def redux_file_state(text_dim: int = TEXT_WIDTH, seed: int = 0, hidden: int | None = None) -> dict[str, torch.Tensor]:
    """A FLUX Redux file's tensors (`redux_up`, `redux_down`) reading the tiny SigLIP's hidden states; the MLP is
    `hidden` wide (the real file: three times the text width)."""
    from diffusion.style_models import ReduxEncoder

    return random_weights(ReduxEncoder(TINY_SIGLIP.hidden, hidden or 3 * text_dim, text_dim), seed)


def dit_demo_layouts() -> dict[str, dict[str, list[int]]]:
    """Demo file name -> name -> shape, for the FLUX and SD3 demo files (see diffusion/demo_dit.py)."""
    from diffusion.demo_dit import (
        DEMO_CLIP_G,
        DEMO_CLIP_L,
        DEMO_FLUX,
        DEMO_FLUX_VAE,
        DEMO_REDUX,
        DEMO_SD3,
        DEMO_SD3_VAE,
        DEMO_SIGLIP,
        DEMO_T5,
    )

    states = {
        DEMO_FLUX: flux_file_state(tiny_flux_arch()),
        DEMO_CLIP_L: clip_file_state("clip_l"),
        DEMO_T5: t5_file_state(),
        DEMO_FLUX_VAE: vae_file_state(),
        DEMO_SD3: sd3_file_state(tiny_sd3_arch(prefix=UNET_PREFIX)),
        DEMO_CLIP_G: clip_file_state("clip_g"),
        DEMO_SD3_VAE: vae_file_state(family="sd3"),
        DEMO_SIGLIP: siglip_file_state(),
        DEMO_REDUX: redux_file_state(),
    }
    return {name: {k: list(v.shape) for k, v in sorted(s.items())} for name, s in states.items()}
