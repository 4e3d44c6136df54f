import torch
from diffusers import ControlNetModel, UNet2DConditionModel

from diffusion.ldm_names import ldm_module_names, ldm_state_dict_names

SDXL = {
    "block_out_channels": (320, 640, 1280),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "use_linear_projection": True,
}


def test_full_size_sd15_unet_maps_every_tensor_to_the_ldm_layout() -> None:
    with torch.device("meta"):
        unet = UNet2DConditionModel(cross_attention_dim=768)
    names = ldm_state_dict_names(unet)
    assert len(names) == len(unet.state_dict()) == 686
    assert len(set(names.values())) == 686
    assert names["down_blocks.0.downsamplers.0.conv.weight"] == "input_blocks.3.0.op.weight"
    assert names["up_blocks.0.upsamplers.0.conv.weight"] == "output_blocks.2.1.conv.weight"
    assert names["up_blocks.1.upsamplers.0.conv.weight"] == "output_blocks.5.2.conv.weight"
    assert names["down_blocks.0.attentions.0.proj_in.weight"] == "input_blocks.1.1.proj_in.weight"
    assert names["mid_block.resnets.1.conv2.weight"] == "middle_block.2.out_layers.3.weight"
    assert names["mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight"] == (
        "middle_block.1.transformer_blocks.0.attn2.to_k.weight"
    )
    assert names["down_blocks.1.resnets.0.conv_shortcut.weight"] == "input_blocks.4.0.skip_connection.weight"
    assert names["up_blocks.3.attentions.2.transformer_blocks.0.ff.net.2.bias"] == (
        "output_blocks.11.1.transformer_blocks.0.ff.net.2.bias"
    )
    assert names["time_embedding.linear_2.weight"] == "time_embed.2.weight"
    assert names["conv_norm_out.weight"] == "out.0.weight"
    assert names["conv_out.weight"] == "out.2.weight"


def test_full_size_sdxl_unet_maps_every_tensor_to_the_ldm_layout() -> None:
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SDXL)
    names = ldm_state_dict_names(unet)
    assert len(set(names.values())) == len(unet.state_dict()) == 1680
    assert names["up_blocks.0.upsamplers.0.conv.weight"] == "output_blocks.2.2.conv.weight"
    assert names["down_blocks.1.downsamplers.0.conv.weight"] == "input_blocks.6.0.op.weight"
    assert names["down_blocks.2.attentions.1.transformer_blocks.9.attn1.to_q.weight"] == (
        "input_blocks.8.1.transformer_blocks.9.attn1.to_q.weight"
    )
    assert names["add_embedding.linear_2.weight"] == "label_emb.0.2.weight"
    assert names["up_blocks.2.resnets.2.conv1.weight"] == "output_blocks.8.0.in_layers.2.weight"


def test_controlnet_extra_layers_map_to_zero_convs_and_hint_block() -> None:
    with torch.device("meta"):
        net = ControlNetModel(cross_attention_dim=768)
    names = ldm_state_dict_names(net)
    assert len(set(names.values())) == len(net.state_dict())
    assert names["controlnet_down_blocks.11.weight"] == "zero_convs.11.0.weight"
    assert names["controlnet_mid_block.bias"] == "middle_block_out.0.bias"
    assert names["controlnet_cond_embedding.conv_in.weight"] == "input_hint_block.0.weight"
    assert names["controlnet_cond_embedding.blocks.5.weight"] == "input_hint_block.12.weight"
    assert names["controlnet_cond_embedding.conv_out.weight"] == "input_hint_block.14.weight"
    modules = ldm_module_names(net)
    assert modules["down_blocks.3.resnets.1.conv1"] == "input_blocks.11.0.in_layers.2"
