"""diffusers/transformers configs built from detected architectures (no hub, no per-size files)."""

from __future__ import annotations

from typing import Any

from diffusion.detect import TextArch, UNetArch, VAEArch, family_defaults


def unet_config(arch: UNetArch, family: str) -> dict[str, Any]:
    levels = len(arch.block_channels)
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in arch.attention)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(arch.attention))
    cfg: dict[str, Any] = {
        "sample_size": 64,
        "in_channels": arch.in_channels,
        "out_channels": arch.out_channels,
        "down_block_types": down,
        "up_block_types": up,
        "mid_block_type": "UNetMidBlock2DCrossAttn" if arch.mid_attention else None,
        "block_out_channels": arch.block_channels,
        "layers_per_block": arch.layers_per_block,
        "cross_attention_dim": arch.context_dim,
        "attention_head_dim": arch.heads,
        "use_linear_projection": arch.linear_projection,
        "transformer_layers_per_block": tuple(max(1, d) for d in arch.transformer_depth) if levels else 1,
        "norm_num_groups": 32,
    }
    if arch.mid_attention and arch.mid_transformer_depth > 1:
        # diffusers reads the mid block's depth from the last level's entry
        cfg["transformer_layers_per_block"] = (*cfg["transformer_layers_per_block"][:-1], arch.mid_transformer_depth)
    if arch.adm_in_channels is not None and arch.class_embedding:
        cfg.update(class_embed_type="projection", projection_class_embeddings_input_dim=arch.adm_in_channels)
    elif arch.adm_in_channels is not None:
        time_dim = family_defaults(family)["addition_time_embed_dim"]
        cfg.update(
            addition_embed_type="text_time",
            addition_time_embed_dim=time_dim,
            projection_class_embeddings_input_dim=arch.adm_in_channels,
        )
    return cfg


def vae_config(arch: VAEArch) -> dict[str, Any]:
    levels = len(arch.block_channels)
    return {
        "in_channels": arch.in_channels,
        "out_channels": arch.in_channels,
        "down_block_types": ("DownEncoderBlock2D",) * levels,
        "up_block_types": ("UpDecoderBlock2D",) * levels,
        "block_out_channels": arch.block_channels,
        "layers_per_block": arch.layers_per_block,
        "latent_channels": arch.latent_channels,
        "norm_num_groups": 32,
        "sample_size": 512,
        "scaling_factor": arch.scaling_factor,
        "shift_factor": arch.shift_factor or None,
        "use_quant_conv": arch.quant_conv,
        "use_post_quant_conv": arch.quant_conv,
    }


def text_config(arch: TextArch) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "vocab_size": arch.vocab,
        "hidden_size": arch.hidden,
        "intermediate_size": arch.intermediate,
        "num_hidden_layers": arch.layers,
        "num_attention_heads": arch.heads,
        "max_position_embeddings": arch.max_positions,
        "hidden_act": arch.hidden_act,
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": arch.pad_token,
    }
    if arch.projection_dim:
        cfg["projection_dim"] = arch.projection_dim
    return cfg
