"""Key conversion between the LDM/CompVis single-file layout and diffusers/transformers module names.

Each component has one table of (LDM prefix, diffusers prefix, kind) pairs built from its detected architecture;
the same table converts both ways, so tests write tiny LDM-layout files with the exact inverse of the loader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch

from diffusion.detect import TextArch, UNetArch, VAEArch

RESNET_UNET = (
    ("in_layers.0", "norm1"),
    ("in_layers.2", "conv1"),
    ("emb_layers.1", "time_emb_proj"),
    ("out_layers.0", "norm2"),
    ("out_layers.3", "conv2"),
    ("skip_connection", "conv_shortcut"),
)
RESNET_VAE = (("nin_shortcut", "conv_shortcut"),)
ATTN_VAE = (("norm", "group_norm"), ("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("proj_out", "to_out.0"))
OPENCLIP_LAYER = (
    ("ln_1", "layer_norm1"),
    ("ln_2", "layer_norm2"),
    ("attn.out_proj", "self_attn.out_proj"),
    ("mlp.c_fc", "mlp.fc1"),
    ("mlp.c_proj", "mlp.fc2"),
)
INNER = {"resnet": RESNET_UNET, "vae_resnet": RESNET_VAE, "vae_attn": ATTN_VAE, "plain": (), "openclip": OPENCLIP_LAYER}


@dataclass(frozen=True)
class Pair:
    ldm: str
    diffusers: str
    kind: str = "plain"


class KeyTable:
    """Prefix pairs of one component; the longest matching prefix wins, then the kind's inner renames apply."""

    def __init__(self, pairs: list[Pair]) -> None:
        self.pairs = sorted(pairs, key=lambda p: -len(p.ldm))
        self.by_diffusers = sorted(pairs, key=lambda p: -len(p.diffusers))

    def to_diffusers(self, key: str) -> str | None:
        for pair in self.pairs:
            if key == pair.ldm or key.startswith(pair.ldm + "."):
                return pair.diffusers + _rename(key[len(pair.ldm) :], INNER[pair.kind], forward=True)
        return None

    def to_ldm(self, key: str) -> str | None:
        for pair in self.by_diffusers:
            if key == pair.diffusers or key.startswith(pair.diffusers + "."):
                return pair.ldm + _rename(key[len(pair.diffusers) :], INNER[pair.kind], forward=False)
        return None


def _rename(rest: str, renames: tuple[tuple[str, str], ...], forward: bool) -> str:
    for a, b in renames:
        src, dst = (a, b) if forward else (b, a)
        if rest.startswith(f".{src}."):
            return f".{dst}." + rest[len(src) + 2 :]
    return rest


def unet_table(arch: UNetArch) -> KeyTable:
    levels = len(arch.block_channels)
    lpb = arch.layers_per_block
    adm = "class_embedding" if arch.class_embedding else "add_embedding"
    pairs = [
        Pair("time_embed.0", "time_embedding.linear_1"),
        Pair("time_embed.2", "time_embedding.linear_2"),
        Pair("label_emb.0.0", f"{adm}.linear_1"),
        Pair("label_emb.0.2", f"{adm}.linear_2"),
        Pair("input_blocks.0.0", "conv_in"),
        Pair("out.0", "conv_norm_out"),
        Pair("out.2", "conv_out"),
        Pair("middle_block.0", "mid_block.resnets.0", "resnet"),
        Pair("middle_block.1", "mid_block.attentions.0"),
        Pair("middle_block.2", "mid_block.resnets.1", "resnet"),
    ]
    if not arch.mid_attention:
        pairs[-2:] = [Pair("middle_block.1", "mid_block.resnets.1", "resnet")]
    for i in range(levels):
        for j in range(lpb):
            n = 1 + i * (lpb + 1) + j
            pairs.append(Pair(f"input_blocks.{n}.0", f"down_blocks.{i}.resnets.{j}", "resnet"))
            if arch.attention[i]:
                pairs.append(Pair(f"input_blocks.{n}.1", f"down_blocks.{i}.attentions.{j}"))
        if i < levels - 1:
            pairs.append(Pair(f"input_blocks.{1 + i * (lpb + 1) + lpb}.0.op", f"down_blocks.{i}.downsamplers.0.conv"))
    for i in range(levels):
        attn = arch.attention[levels - 1 - i]
        for j in range(lpb + 1):
            n = i * (lpb + 1) + j
            pairs.append(Pair(f"output_blocks.{n}.0", f"up_blocks.{i}.resnets.{j}", "resnet"))
            if attn:
                pairs.append(Pair(f"output_blocks.{n}.1", f"up_blocks.{i}.attentions.{j}"))
            if i < levels - 1 and j == lpb:
                pairs.append(Pair(f"output_blocks.{n}.{2 if attn else 1}.conv", f"up_blocks.{i}.upsamplers.0.conv"))
    return KeyTable(pairs)


def vae_table(arch: VAEArch) -> KeyTable:
    levels = len(arch.block_channels)
    pairs = [
        Pair("quant_conv", "quant_conv"),
        Pair("post_quant_conv", "post_quant_conv"),
    ]
    for part in ("encoder", "decoder"):
        pairs += [
            Pair(f"{part}.conv_in", f"{part}.conv_in"),
            Pair(f"{part}.conv_out", f"{part}.conv_out"),
            Pair(f"{part}.norm_out", f"{part}.conv_norm_out"),
            Pair(f"{part}.mid.block_1", f"{part}.mid_block.resnets.0", "vae_resnet"),
            Pair(f"{part}.mid.block_2", f"{part}.mid_block.resnets.1", "vae_resnet"),
            Pair(f"{part}.mid.attn_1", f"{part}.mid_block.attentions.0", "vae_attn"),
        ]
    for i in range(levels):
        for j in range(arch.layers_per_block):
            pairs.append(Pair(f"encoder.down.{i}.block.{j}", f"encoder.down_blocks.{i}.resnets.{j}", "vae_resnet"))
        if i < levels - 1:
            pairs.append(Pair(f"encoder.down.{i}.downsample.conv", f"encoder.down_blocks.{i}.downsamplers.0.conv"))
        up = levels - 1 - i
        for j in range(arch.layers_per_block + 1):
            pairs.append(Pair(f"decoder.up.{i}.block.{j}", f"decoder.up_blocks.{up}.resnets.{j}", "vae_resnet"))
        if i > 0:
            pairs.append(Pair(f"decoder.up.{i}.upsample.conv", f"decoder.up_blocks.{up}.upsamplers.0.conv"))
    return KeyTable(pairs)


def text_table(arch: TextArch) -> KeyTable:
    if arch.layout == "hf":
        pairs = [Pair("transformer.text_model", "text_model")]
        if arch.projection_dim:
            pairs.append(Pair("transformer.text_projection", "text_projection"))
        return KeyTable(pairs)
    pairs = [
        Pair("model.token_embedding", "text_model.embeddings.token_embedding"),
        Pair("model.ln_final", "text_model.final_layer_norm"),
    ]
    pairs += [
        Pair(f"model.transformer.resblocks.{i}", f"text_model.encoder.layers.{i}", "openclip")
        for i in range(arch.layers)
    ]
    return KeyTable(pairs)


class Renamed(Mapping[str, torch.Tensor]):
    """Tensors of `source` under new names, read only when asked for: a checkpoint's UNet is then read and cast
    one tensor at a time, never held twice."""

    def __init__(self, source: Mapping[str, torch.Tensor], names: dict[str, str]) -> None:
        self.source = source
        self.names = names  # new name -> name in source

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.source[self.names[name]]

    def __contains__(self, name: object) -> bool:
        return name in self.names  # Mapping's own would read the tensor to find out

    def read_as(self, name: str, pick: Callable[[torch.dtype], torch.dtype]) -> torch.Tensor:
        """Cast as read when the source reads files (diffusion.checkpoint.TensorFile), else read then cast."""
        read_as = getattr(self.source, "read_as", None)
        if read_as is not None:
            return read_as(self.names[name], pick)
        tensor = self.source[self.names[name]]
        return tensor.to(pick(tensor.dtype))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def shape(self, name: str) -> tuple[int, ...]:
        """The tensor's shape, from the file's header when the source has one (without reading the tensor)."""
        shapes = getattr(self.source, "shapes", None)
        key = self.names[name]
        return tuple(shapes[key]) if shapes is not None else tuple(self.source[key].shape)


def convert(state: Mapping[str, torch.Tensor], table: KeyTable, prefix: str) -> tuple[Renamed, list[str]]:
    """LDM tensors under `prefix` -> diffusers names; returns them (read lazily) and the keys under prefix that did
    not map. Converting renames: no tensor is read or copied here."""
    names: dict[str, str] = {}
    unmapped: list[str] = []
    for key in state:
        if not key.startswith(prefix):
            continue
        name = table.to_diffusers(key[len(prefix) :])
        if name is None:
            unmapped.append(key)
        else:
            names[name] = key
    return Renamed(state, names), unmapped


def fix_vae_attention(state: Mapping[str, torch.Tensor], to_linear: bool) -> dict[str, torch.Tensor]:
    """LDM stores the VAE mid-block attention projections as 1x1 convs; diffusers as linears."""
    out = dict(state)
    for key, tensor in out.items():
        if ".mid_block.attentions.0." in key and key.endswith(".weight") and "group_norm" not in key:
            out[key] = tensor.reshape(tensor.shape[0], tensor.shape[1]) if to_linear else tensor[:, :, None, None]
    return out


def openclip_to_hf(state: Mapping[str, torch.Tensor], prefix: str, arch: TextArch) -> dict[str, torch.Tensor]:
    """OpenCLIP text tower under `prefix` + "model." -> transformers CLIPTextModel(WithProjection) names."""
    table = text_table(arch)
    p = prefix + "model."
    mapped, _ = convert(state, table, prefix)
    out = {k: v for k, v in mapped.items() if ".attn.in_proj_" not in k}
    out["text_model.embeddings.position_embedding.weight"] = state[p + "positional_embedding"]
    for i in range(arch.layers):
        base = f"{p}transformer.resblocks.{i}.attn."
        dst = f"text_model.encoder.layers.{i}.self_attn."
        for kind in ("weight", "bias"):
            q, k, v = state[f"{base}in_proj_{kind}"].chunk(3, dim=0)
            out[f"{dst}q_proj.{kind}"], out[f"{dst}k_proj.{kind}"], out[f"{dst}v_proj.{kind}"] = q, k, v
    if arch.projection_dim and p + "text_projection" in state:
        out["text_projection.weight"] = state[p + "text_projection"].t()
    return out


def hf_to_openclip(state: Mapping[str, torch.Tensor], arch: TextArch) -> dict[str, torch.Tensor]:
    """The inverse of `openclip_to_hf` (without prefix), for writing OpenCLIP-layout test files."""
    table = text_table(arch)
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        if key == "text_model.embeddings.position_embedding.weight":
            out["model.positional_embedding"] = tensor
        elif key == "text_projection.weight":
            out["model.text_projection"] = tensor.t().contiguous()
        elif "self_attn." in key and "out_proj" not in key:
            layer, name = key.split(".self_attn.")
            qkv.setdefault(f"{layer}|{name.split('.')[1]}", {})[name.split("_")[0]] = tensor
        elif (name := table.to_ldm(key)) is not None:
            out[name] = tensor
    for tag, parts in qkv.items():
        layer, kind = tag.split("|")
        i = layer.rsplit(".", 1)[1]
        out[f"model.transformer.resblocks.{i}.attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def to_ldm(state: Mapping[str, torch.Tensor], table: KeyTable, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    """diffusers names -> LDM names under `prefix`; raises KeyError for a name the table cannot place."""
    for key, tensor in state.items():
        name = table.to_ldm(key)
        if name is None:
            raise KeyError(f"no LDM name for {key}")
        yield prefix + name, tensor
