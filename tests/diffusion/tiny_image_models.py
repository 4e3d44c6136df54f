"""Tiny random-weight CLIP vision encoders and IP-Adapters, written by tests in the real file layouts."""

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
