"""Tiny random-weight models of each family, written in the real single-file (LDM) layout.

Tests use them so the real loader reads files as users have them; `demo_layout`, `demo_controlnet_layout` and
`demo_upscaler_layout` derive the tensor tables of the demo files Loom writes on first start
(diffusion/configs/demo_*.json) from the same builders and the real loaders' modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from diffusion.convert import to_ldm, unet_table
from diffusion.detect import (
    TEXT_PREFIXES,
    UNET_PREFIX,
    TextArch,
    UNetArch,
    VAEArch,
    detect_text,
    family_defaults,
)


@dataclass(frozen=True)
class TinySpec:
    family: str
    unet: UNetArch
    vae: VAEArch
    text: tuple[TextArch, ...]


def text_arch(family: str, index: int, hidden: int, prefix: str) -> TextArch:
    """A two-layer encoder of width `hidden`, described by the shapes its file would have and read back by the same
    detection real files go through (so the tiny spec and a loaded tiny file cannot disagree)."""
    spec = family_defaults(family)["text_encoders"][index]
    if spec["layout"] == "hf":
        t = f"{prefix}transformer.text_model."
        shapes = {
            f"{t}embeddings.token_embedding.weight": (49408, hidden),
            f"{t}embeddings.position_embedding.weight": (77, hidden),
            f"{prefix}transformer.text_projection.weight": (hidden, hidden),
        }
        shapes |= {f"{t}encoder.layers.{i}.mlp.fc1.weight": (hidden * 2, hidden) for i in range(2)}
    else:
        t = f"{prefix}model."
        shapes = {
            f"{t}token_embedding.weight": (49408, hidden),
            f"{t}positional_embedding": (77, hidden),
            f"{t}text_projection": (hidden, hidden),
        }
        shapes |= {f"{t}transformer.resblocks.{i}.mlp.c_fc.weight": (hidden * 2, hidden) for i in range(2)}
    return detect_text(shapes, prefix, spec)


def tiny_spec(family: str = "sd1", vae_levels: int = 2) -> TinySpec:
    """The smallest architecture with each family's structure (32 channels: GroupNorm needs 32 groups)."""
    d = family_defaults(family)
    prefixes = TEXT_PREFIXES[family]
    texts = tuple(text_arch(family, i, 32, p) for i, p in enumerate(prefixes))
    context = sum(t.hidden for t in texts)
    sdxl = family == "sdxl"
    channels = (32, 64)
    heads = tuple(d["unet_heads"] or max(1, c // d["unet_head_dim"]) for c in channels)
    unet = UNetArch(
        in_channels=4,
        out_channels=4,
        block_channels=channels,
        layers_per_block=1,
        attention=(False, True),  # no attention at full latent resolution: keeps the demo fast on a CPU
        transformer_depth=(0, 2) if sdxl else (0, 1),
        mid_attention=True,
        mid_transformer_depth=2 if sdxl else 1,
        context_dim=context,
        linear_projection=family != "sd1",
        adm_in_channels=(texts[-1].projection_dim or 0) + 6 * d["addition_time_embed_dim"] if sdxl else None,
        heads=heads,
    )
    vae = VAEArch(
        in_channels=3,
        latent_channels=4,
        block_channels=(32,) * vae_levels,
        layers_per_block=1,
        scaling_factor=d["vae_scaling_factor"],
    )
    return TinySpec(family, unet, vae, texts)


def random_weights(module: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Deterministic weights for every tensor of an (empty) module: scaled Gaussians, norms near 1."""
    gen = torch.Generator("cpu").manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, ref in module.state_dict().items():
        shape = tuple(ref.shape)
        noise = torch.randn(shape, generator=gen)
        if len(shape) >= 2:
            out[key] = noise / math.sqrt(math.prod(shape[1:]))
        elif "norm" in key and key.endswith("weight"):
            out[key] = 1 + 0.02 * noise
        else:
            out[key] = 0.02 * noise
    return out


@dataclass(eq=False)
class TinyModules:
    spec: TinySpec
    unet: nn.Module
    vae: nn.Module
    text: tuple[nn.Module, ...]


def build_tiny(spec: TinySpec, seed: int = 0) -> TinyModules:
    """Real diffusers/transformers modules of a tiny spec with deterministic random weights."""
    from diffusion.checkpoint import assign_weights
    from diffusion.loader import build_text, build_unet, build_vae

    f32 = torch.float32
    unet = build_unet(spec.unet, spec.family)
    unet = assign_weights(unet, random_weights(unet, seed), "unet", f32)
    vae = build_vae(spec.vae)
    vae = assign_weights(vae, random_weights(vae, seed + 1), "vae", f32)
    texts = []
    for i, arch in enumerate(spec.text):
        module = build_text(arch)
        texts.append(assign_weights(module, random_weights(module, seed + 2 + i), "text", f32))
    return TinyModules(spec, unet, vae, tuple(texts))


def ldm_state(modules: TinyModules) -> dict[str, torch.Tensor]:
    """The modules' tensors under their LDM single-file names (the inverse of the loader's conversion)."""
    from diffusion.save import text_state, vae_state

    spec = modules.spec
    state = dict(to_ldm(modules.unet.state_dict(), unet_table(spec.unet), UNET_PREFIX))
    state.update(vae_state(modules.vae, spec.vae))
    for arch, module in zip(spec.text, modules.text, strict=True):
        state.update(text_state(module, arch))
    return {k: v.contiguous() for k, v in state.items()}


def write_checkpoint(path: Path, modules: TinyModules, dtype: torch.dtype | None = None) -> Path:
    """The modules as a single-file checkpoint; `dtype` stores the weights cast (fp16, as released checkpoints are)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    state = ldm_state(modules)
    if dtype is not None:
        state = {k: v.to(dtype) for k, v in state.items()}
    save_file(state, str(tmp), metadata={"loom": "tiny random-weight demo; images are noise"})
    tmp.replace(path)
    return path


def demo_layout() -> dict[str, list[int]]:
    """LDM name -> shape of the demo checkpoint: the tiny SD 1.x spec with an 8x-downscaling VAE."""
    state = ldm_state(build_tiny(tiny_spec("sd1", vae_levels=4), seed=0))
    return {k: list(v.shape) for k, v in sorted(state.items())}


# The demo ControlNet's hint encoder: four levels (three stride-2 convs take the hint down 8x to the latent's size).
DEMO_HINT_CHANNELS = (8, 8, 16, 16)


def demo_controlnet_layout() -> dict[str, list[int]]:
    """LDM name -> shape of a single-file ControlNet for the demo checkpoint's UNet (under `control_model.`)."""
    from diffusers import ControlNetModel

    from diffusion.controlnet import LDM_PREFIX, ControlNetArch
    from diffusion.ldm_names import ldm_state_dict_names

    arch = ControlNetArch(
        unet=tiny_spec("sd1").unet, family="sd1", hint_channels=3, hint_embedding_channels=DEMO_HINT_CHANNELS
    )
    with torch.device("meta"):
        model = ControlNetModel(**arch.diffusers_config())
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    return dict(sorted((LDM_PREFIX + ldm, shapes[key]) for key, ldm in ldm_state_dict_names(model).items()))


def demo_upscaler_layout() -> dict[str, list[int]]:
    """BasicSR name -> shape of a minimal x4 RRDBNet (ESRGAN): 8 features, one RRDB block."""
    from diffusion.esrgan import RRDBArch, RRDBNet

    with torch.device("meta"):
        model = RRDBNet(RRDBArch(in_channels=3, out_channels=3, features=8, growth=4, blocks=1, upsamplers=2))
    return {k: list(v.shape) for k, v in sorted(model.state_dict().items())}


def demo_clip_vision_layout() -> dict[str, list[int]]:
    """transformers name -> shape of a two-layer CLIP vision encoder (28 px input, 24-wide projection)."""
    from diffusion.clip_vision import VisionArch, build_vision

    arch = VisionArch("ViT (32 wide)", 32, 2, 64, 1, 14, 28, 24, "gelu")
    return {k: list(v.shape) for k, v in sorted(build_vision(arch).state_dict().items())}


def demo_ip_adapter_layout() -> dict[str, list[int]]:
    """Name -> shape of a base-variant IP-Adapter (4 tokens) for the demo checkpoint's UNet and the demo encoder."""
    from diffusion.ip_adapter import LinearProjection, cross_attention_layers
    from diffusion.loader import build_unet

    spec = tiny_spec("sd1")
    unet = build_unet(spec.unet, "sd1")
    with torch.device("meta"):
        projection = LinearProjection(24, spec.unet.context_dim, tokens=4)
    layout = {f"image_proj.{k}": list(v.shape) for k, v in projection.state_dict().items()}
    for index, name in cross_attention_layers(unet):
        shape = list(unet.get_submodule(name).to_k.weight.shape)
        layout |= {f"ip_adapter.{index}.to_k_ip.weight": shape, f"ip_adapter.{index}.to_v_ip.weight": shape}
    return dict(sorted(layout.items()))
