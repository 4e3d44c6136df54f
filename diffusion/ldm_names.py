"""Names of a diffusers UNet (or ControlNet) module in the original LDM/CompVis layout.

Files in the wild (single-file checkpoints, ControlNets, kohya LoRAs) name layers after the LDM code:
`input_blocks.4.1.transformer_blocks.0.attn1.to_q`, `middle_block.0.in_layers.2`, `output_blocks.2.2.conv`. The
diffusers modules Loom runs name the same layers `down_blocks.1.attentions.0...`, `mid_block.resnets.0.conv1`,
`up_blocks.0.upsamplers.0.conv`. The correspondence follows from the block structure alone (how many resnets each
level has, which levels have attention), so it is read from the built model rather than from a table per size.
"""

from __future__ import annotations

from torch import nn

# Sub-layers of a ResnetBlock2D and the LDM ResBlock names of the same layers.
_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}

_TOP_LEVEL = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "class_embedding.linear_1": "label_emb.0.0",
    "class_embedding.linear_2": "label_emb.0.2",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "controlnet_mid_block": "middle_block_out.0",
    "controlnet_cond_embedding.conv_in": "input_hint_block.0",
    "controlnet_cond_embedding.conv_out": "input_hint_block.14",
}


def _level(out: dict[str, str], name: str, block: nn.Module, ldm: str, index: int) -> int:
    """Map one down or up level: each resnet (and the attention after it) is one numbered LDM block, `ldm.N.0`
    and `ldm.N.1`. Returns the next block number."""
    attentions = getattr(block, "attentions", None)
    for i in range(len(block.resnets)):
        out[f"{name}.resnets.{i}"] = f"{ldm}.{index}.0"
        if attentions is not None and i < len(attentions):
            out[f"{name}.attentions.{i}"] = f"{ldm}.{index}.1"
        index += 1
    return index


def block_prefixes(model: nn.Module) -> dict[str, str]:
    """Diffusers block prefix -> LDM block prefix, for every resnet, attention, down/upsampler and control layer."""
    out: dict[str, str] = {}
    index = 1
    for b, block in enumerate(getattr(model, "down_blocks", [])):
        index = _level(out, f"down_blocks.{b}", block, "input_blocks", index)
        if getattr(block, "downsamplers", None):
            out[f"down_blocks.{b}.downsamplers.0.conv"] = f"input_blocks.{index}.0.op"
            index += 1
    mid = getattr(model, "mid_block", None)
    if mid is not None:
        mid_attn = getattr(mid, "attentions", None) or []
        out["mid_block.resnets.0"] = "middle_block.0"
        for i in range(1, len(mid.resnets)):
            # LDM interleaves: resnet, attention, resnet, ...
            out[f"mid_block.attentions.{i - 1}"] = f"middle_block.{2 * i - 1}" if i - 1 < len(mid_attn) else ""
            out[f"mid_block.resnets.{i}"] = f"middle_block.{2 * i if mid_attn else i}"
    index = 0
    for b, block in enumerate(getattr(model, "up_blocks", [])):
        index = _level(out, f"up_blocks.{b}", block, "output_blocks", index)
        if getattr(block, "upsamplers", None):
            slot = 2 if getattr(block, "attentions", None) is not None else 1
            out[f"up_blocks.{b}.upsamplers.0.conv"] = f"output_blocks.{index - 1}.{slot}.conv"
    for i in range(len(getattr(model, "controlnet_down_blocks", []))):
        out[f"controlnet_down_blocks.{i}"] = f"zero_convs.{i}.0"
    embedding = getattr(model, "controlnet_cond_embedding", None)
    for i in range(len(getattr(embedding, "blocks", []))):
        out[f"controlnet_cond_embedding.blocks.{i}"] = f"input_hint_block.{2 * (i + 1)}"
    out.update(_TOP_LEVEL)
    return {k: v for k, v in out.items() if v}


def to_ldm(name: str, prefixes: dict[str, str]) -> str | None:
    """The LDM name of a diffusers module or parameter name, or None when it has no LDM counterpart."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        head = ".".join(parts[:cut])
        ldm = prefixes.get(head)
        if ldm is None:
            continue
        rest = parts[cut:]
        if ".resnets." in head and rest:
            sub = _RESNET.get(rest[0])
            if sub is None:
                return None
            rest = [sub, *rest[1:]]
        return ".".join([ldm, *rest])
    return None


def ldm_module_names(model: nn.Module) -> dict[str, str]:
    """Every named module of `model` that holds parameters -> its LDM name (modules without one are left out)."""
    prefixes = block_prefixes(model)
    names: dict[str, str] = {}
    for name, module in model.named_modules():
        if not name or not any(True for _ in module.parameters(recurse=False)):
            continue
        ldm = to_ldm(name, prefixes)
        if ldm is not None:
            names[name] = ldm
    return names


def ldm_state_dict_names(model: nn.Module) -> dict[str, str]:
    """Every parameter and buffer name of `model` -> the key an LDM-layout file stores it under."""
    prefixes = block_prefixes(model)
    keys = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
    out: dict[str, str] = {}
    for key in keys:
        ldm = to_ldm(key, prefixes)
        if ldm is not None:
            out[key] = ldm
    return out
