"""Tiny random-weight CLIP vision encoders, IP-Adapters, unCLIP checkpoints and T2I style adapters, written by tests in
the real file layouts (the SigLIP encoder and FLUX Redux stand-ins are in diffusion/tiny_dit.py, for the demo files)."""

from __future__ import annotations

import torch

from diffusion.clip_vision import VisionArch, build_vision
from diffusion.tiny import random_weights

TINY_VISION = VisionArch(
    name="ViT (32 wide)",
    hidden=32,
    layers=3,
    intermediate=64,
    heads=1,
    patch=14,
    image_size=28,
    projection_dim=24,
    hidden_act="gelu",
)


def tiny_vision_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """transformers-layout tensors (`vision_model.*`, `visual_projection.weight`) of the tiny encoder."""
    from diffusion.checkpoint import assign_weights

    module = build_vision(TINY_VISION)
    return dict(assign_weights(module, random_weights(module, seed), "tiny", torch.float32).state_dict())


def to_openclip(state: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """The same tensors in OpenCLIP's `visual.*` layout (fused qkv, transposed projection)."""
    v, e = "vision_model.", "vision_model.encoder.layers."
    out = {
        "visual.class_embedding": state[f"{v}embeddings.class_embedding"],
        "visual.conv1.weight": state[f"{v}embeddings.patch_embedding.weight"],
        "visual.positional_embedding": state[f"{v}embeddings.position_embedding.weight"],
        "visual.proj": state["visual_projection.weight"].t().contiguous(),
    }
    for ours, theirs in (("pre_layrnorm", "ln_pre"), ("post_layernorm", "ln_post")):
        for kind in ("weight", "bias"):
            out[f"visual.{theirs}.{kind}"] = state[f"{v}{ours}.{kind}"]
    names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj"}
    names |= {"mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
    for i in range(layers):
        block = f"visual.transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            qkv = [state[f"{e}{i}.self_attn.{p}_proj.{kind}"] for p in "qkv"]
            out[f"{block}attn.in_proj_{kind}"] = torch.cat(qkv)
            for ours, theirs in names.items():
                out[f"{block}{theirs}.{kind}"] = state[f"{e}{i}.{ours}.{kind}"]
    return out


def tiny_ip_adapter(unet: torch.nn.Module, variant: str, clip_dim: int, seed: int = 0) -> dict[str, dict]:
    """The two dicts of an IP-Adapter file for `unet`, in the public layout: `image_proj` (linear, resampler or
    MLP projection) and `ip_adapter` (`N.to_k_ip.weight` / `N.to_v_ip.weight` per cross-attention layer N)."""
    from diffusion.ip_adapter import LinearProjection, MLPProjection, Resampler, cross_attention_layers

    cross = int(unet.config.cross_attention_dim)
    if variant == "linear":
        proj: torch.nn.Module = LinearProjection(clip_dim, cross, tokens=4)
    elif variant == "resampler":
        proj = Resampler(64, depth=2, heads=1, head_dim=64, queries=4, clip_dim=clip_dim, cross_dim=cross, ff_mult=4)
    else:
        proj = MLPProjection(clip_dim, cross)
    gen = torch.Generator().manual_seed(seed)
    image_proj = {k: torch.randn(v.shape, generator=gen) * 0.2 for k, v in proj.state_dict().items()}
    layers = {}
    for index, name in cross_attention_layers(unet):
        shape = unet.get_submodule(name).to_k.weight.shape
        for part in ("k", "v"):
            layers[f"{index}.to_{part}_ip.weight"] = torch.randn(shape, generator=gen) / shape[1] ** 0.5
    return {"image_proj": image_proj, "ip_adapter": layers}


def flat(adapter: dict[str, dict]) -> dict[str, torch.Tensor]:
    """The .safetensors form: `image_proj.*` and `ip_adapter.*` names."""
    return {f"{group}.{k}": v.contiguous() for group, tensors in adapter.items() for k, v in tensors.items()}


def tiny_unclip_state(seed: int = 7) -> dict[str, torch.Tensor]:
    """A tiny SD 2.1 unCLIP checkpoint in the real single-file layout: an SD 2.x model whose UNet takes a class
    label (`label_emb.0.0` / `.0.2`, input twice the image-embedding width), the tiny CLIP vision encoder in
    OpenCLIP's layout under `embedder.model.visual.*`, and the noise augmentor (`noise_augmentor.*`: a
    squared-cosine schedule of 1000 levels, the embeddings' mean and std)."""
    from dataclasses import replace

    from diffusion.tiny import build_tiny, ldm_state, tiny_spec

    spec = tiny_spec("sd2")
    width = TINY_VISION.projection_dim
    spec = replace(spec, unet=replace(spec.unet, adm_in_channels=2 * width, class_embedding=True))
    state = ldm_state(build_tiny(spec, seed))
    vision = to_openclip(tiny_vision_state(seed), TINY_VISION.layers)
    state.update({f"embedder.model.{k}": v for k, v in vision.items()})
    steps = torch.arange(1001, dtype=torch.float64) / 1000
    alpha_bar = torch.cos((steps + 0.008) / 1.008 * torch.pi / 2) ** 2
    betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    gen = torch.Generator().manual_seed(seed)
    state["noise_augmentor.betas"] = betas.float()
    state["noise_augmentor.alphas_cumprod"] = torch.cumprod(1 - betas, 0).float()
    state["noise_augmentor.data_mean"] = torch.randn(1, width, generator=gen) * 0.1
    state["noise_augmentor.data_std"] = 1 + torch.rand(1, width, generator=gen)
    return {k: v.contiguous() for k, v in state.items()}


def tiny_t2i_style(context_dim: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A T2I-Adapter style adapter file's tensors for the tiny encoder (32 wide): 4 style tokens, 2 layers."""
    from diffusion.style_models import T2I_STYLE_HEADS, T2IStyleAdapter

    module = T2IStyleAdapter(TINY_VISION.hidden, context_dim, tokens=4, layers=2, heads=T2I_STYLE_HEADS)
    return random_weights(module, seed)
