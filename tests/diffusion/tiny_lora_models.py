"""Tiny diffusers UNets and transformers CLIP text models with random weights, for the LoRA/ControlNet tests."""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

CONTEXT = 16


def tiny_unet(seed: int = 0, sdxl: bool = False) -> UNet2DConditionModel:
    """Two levels, attention on the first (SD 1.x-like) or the second (SDXL-like, with size conditioning)."""
    torch.manual_seed(seed)
    extra = (
        {
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 4,
            "projection_class_embeddings_input_dim": 8 + 6 * 4,
            "use_linear_projection": True,
        }
        if sdxl
        else {}
    )
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D") if sdxl else ("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D") if sdxl else ("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=CONTEXT,
        attention_head_dim=2,
        norm_num_groups=4,
        sample_size=8,
        **extra,
    )
    with torch.no_grad():
        for param in unet.parameters():
            param.normal_(0, 0.2)
    return unet.eval()


def tiny_clip(seed: int = 0, hidden: int = 16, projection: bool = False) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=1000,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=hidden,
    )
    model = CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)
    return model.eval()


def unet_inputs(seed: int = 1, sdxl: bool = False) -> dict[str, object]:
    gen = torch.Generator().manual_seed(seed)
    inputs: dict[str, object] = {
        "sample": torch.randn(1, 4, 8, 8, generator=gen),
        "timestep": torch.tensor([10.0]),
        "encoder_hidden_states": torch.randn(1, 5, CONTEXT, generator=gen),
    }
    if sdxl:
        inputs["added_cond_kwargs"] = {"text_embeds": torch.randn(1, 8, generator=gen), "time_ids": torch.ones(1, 6)}
    return inputs


def tiny_controlnet(seed: int = 0) -> torch.nn.Module:
    """A ControlNet matching `tiny_unet()` whose zero-initialised output convs are perturbed so it has an effect.

    Its group count (8) and head count (8, SD 1.x's) are what `detect_controlnet` infers for these shapes, so a
    file written from it loads back into the same computation.
    """
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    net = ControlNetModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        cross_attention_dim=CONTEXT,
        attention_head_dim=8,
        norm_num_groups=8,
        conditioning_embedding_out_channels=(4, 4, 8, 8),
    )
    with torch.no_grad():
        for param in net.parameters():
            param.normal_(0, 0.2)
    return net.eval().requires_grad_(False)
