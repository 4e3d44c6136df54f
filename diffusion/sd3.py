"""SD3 / SD3.5 MMDiT transformers: architecture and variant from tensor names and shapes, and the key layouts.

Files come in the reference layout (`joint_blocks.N.x_block.attn.qkv`, `x_embedder`, `pos_embed`, often under
`model.diffusion_model.` in full checkpoints that also bundle `text_encoders.*` and `first_stage_model.*`) or in
diffusers' (`transformer_blocks.N.attn.to_q`, `pos_embed.proj`). diffusers' own single-file converter does the
reference -> diffusers step at any size; the inverse here only writes stand-ins. Variants: SD3 medium (24 blocks,
1536 wide), SD3.5 large (38 blocks, 2432 wide, RMS qk-norm) and SD3.5 medium (MMDiT-X: a second image-only
attention `attn2` in its first blocks, qk-norm).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from diffusion.detect import Shapes, UnknownModel, _indices
from diffusion.flux import Fused, _linear, _split, find_prefix, fuse

REFERENCE_MARK = "joint_blocks.0.x_block.attn.qkv.weight"
DIFFUSERS_MARK = "transformer_blocks.0.attn.add_q_proj.weight"
DIFFUSERS_PATCH = "pos_embed.proj.weight"


@dataclass(frozen=True)
class SD3Arch:
    prefix: str
    layout: str  # "reference" or "diffusers"
    in_channels: int
    out_channels: int
    patch: int
    hidden: int
    head_dim: int
    depth: int
    context_dim: int
    pooled_dim: int
    pos_embed_max: int
    dual_attention: tuple[int, ...]  # blocks with the second image attention (MMDiT-X)
    qk_norm: bool

    @property
    def heads(self) -> int:
        return self.hidden // self.head_dim

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SD3Arch:
        """The architecture of a built SD3Transformer2DModel, from its constructor arguments."""
        return cls(
            prefix="",
            layout="diffusers",
            in_channels=int(config["in_channels"]),
            out_channels=int(config["out_channels"]),
            patch=int(config["patch_size"]),
            hidden=int(config["num_attention_heads"]) * int(config["attention_head_dim"]),
            head_dim=int(config["attention_head_dim"]),
            depth=int(config["num_layers"]),
            context_dim=int(config["joint_attention_dim"]),
            pooled_dim=int(config["pooled_projection_dim"]),
            pos_embed_max=int(config["pos_embed_max_size"]),
            dual_attention=tuple(config["dual_attention_layers"]),
            qk_norm=config["qk_norm"] is not None,
        )

    @property
    def variant(self) -> str:
        """SD3.5 medium has dual attention, SD3.5 large qk-norm alone, SD3 medium neither."""
        if self.dual_attention:
            return "sd3.5-medium"
        return "sd3.5-large" if self.qk_norm else "sd3-medium"

    def config(self) -> dict[str, Any]:
        """SD3Transformer2DModel's constructor arguments."""
        return {
            "sample_size": 128,
            "patch_size": self.patch,
            "in_channels": self.in_channels,
            "num_layers": self.depth,
            "attention_head_dim": self.head_dim,
            "num_attention_heads": self.heads,
            "joint_attention_dim": self.context_dim,
            "caption_projection_dim": self.hidden,
            "pooled_projection_dim": self.pooled_dim,
            "out_channels": self.out_channels,
            "pos_embed_max_size": self.pos_embed_max,
            "dual_attention_layers": self.dual_attention,
            "qk_norm": "rms_norm" if self.qk_norm else None,
        }


def is_sd3(shapes: Shapes) -> bool:
    if find_prefix(shapes, REFERENCE_MARK) is not None:
        return True
    prefix = find_prefix(shapes, DIFFUSERS_MARK)
    return prefix is not None and f"{prefix}{DIFFUSERS_PATCH}" in shapes


def _square_side(count: int, what: str) -> int:
    side = math.isqrt(count)
    if side * side != count:
        raise UnknownModel(f"{what}: {count} positions are not a square grid")
    return side


# Where each size is read, per layout (patch embedding [hidden, in, p, p], qk-norm [head_dim], positions [1, n, h]).
LAYOUT_NAMES = {
    "reference": {
        "patch": "x_embedder.proj.weight",
        "out": "final_layer.linear.weight",
        "qk_norm": "joint_blocks.0.x_block.attn.ln_q.weight",
        "context": "context_embedder.weight",
        "pooled": "y_embedder.mlp.0.weight",
        "positions": "pos_embed",
        "blocks": r"joint_blocks\.(\d+)\.",
        "dual": r"joint_blocks\.(\d+)\.x_block\.attn2\.",
    },
    "diffusers": {
        "patch": DIFFUSERS_PATCH,
        "out": "proj_out.weight",
        "qk_norm": "transformer_blocks.0.attn.norm_q.weight",
        "context": "context_embedder.weight",
        "pooled": "time_text_embed.text_embedder.linear_1.weight",
        "positions": "pos_embed.pos_embed",
        "blocks": r"transformer_blocks\.(\d+)\.",
        "dual": r"transformer_blocks\.(\d+)\.attn2\.",
    },
}


def detect_sd3(shapes: Shapes) -> SD3Arch:
    """The SD3 architecture of a file in either layout; UnknownModel when it is neither or incomplete."""
    layout, prefix = "reference", find_prefix(shapes, REFERENCE_MARK)
    if prefix is None:
        layout, prefix = "diffusers", find_prefix(shapes, DIFFUSERS_MARK)
    if prefix is None or (layout == "diffusers" and f"{prefix}{DIFFUSERS_PATCH}" not in shapes):
        raise UnknownModel("no SD3 transformer blocks (joint_blocks.* or transformer_blocks.* with pos_embed)")
    names = {k: prefix + v for k, v in LAYOUT_NAMES[layout].items()}
    p = re.escape(prefix)
    try:
        patch = shapes[names["patch"]]
        depth = len(_indices(shapes, p + LAYOUT_NAMES[layout]["blocks"]))
        qk_norm = names["qk_norm"] in shapes
        return SD3Arch(
            prefix=prefix,
            layout=layout,
            in_channels=patch[1],
            out_channels=shapes[names["out"]][0] // (patch[2] * patch[3]),
            patch=patch[2],
            hidden=patch[0],
            # the reference gives every variant 64-wide heads, one head per block; qk-norm weights show it
            head_dim=shapes[names["qk_norm"]][0] if qk_norm else patch[0] // depth,
            depth=depth,
            context_dim=shapes[names["context"]][1],
            pooled_dim=shapes[names["pooled"]][1],
            pos_embed_max=_square_side(shapes[names["positions"]][1], "pos_embed"),
            dual_attention=tuple(_indices(shapes, p + LAYOUT_NAMES[layout]["dual"])),
            qk_norm=qk_norm,
        )
    except KeyError as exc:
        raise UnknownModel(f"incomplete SD3 transformer: missing {exc}") from exc


def to_diffusers(state: Mapping[str, torch.Tensor], arch: SD3Arch) -> dict[str, torch.Tensor]:
    """The transformer's tensors under diffusers' names, from a file in either layout (diffusers' converter for
    the reference layout, given only the transformer's own tensors)."""
    p = arch.prefix
    own = {k[len(p) :]: state[k] for k in state if k.startswith(p)}
    if arch.layout == "diffusers":
        return own
    from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers

    try:
        return convert_sd3_transformer_checkpoint_to_diffusers(own)
    except KeyError as exc:
        raise UnknownModel(f"incomplete SD3 transformer: missing {p}{exc.args[0]}") from exc


def sd3_table(arch: SD3Arch) -> list[Fused]:
    """Every tensor of the transformer as a reference <-> diffusers rule (without the file's prefix). The last
    block's text stream only feeds the image stream's attention, so it has no output projection or MLP."""
    h = arch.hidden
    rules = [Fused("pos_embed", ("pos_embed.pos_embed",))]
    rules += _linear("x_embedder.proj", "pos_embed.proj") + _linear("context_embedder", "context_embedder")
    for ref, diff in (("t_embedder", "timestep_embedder"), ("y_embedder", "text_embedder")):
        rules += _linear(f"{ref}.mlp.0", f"time_text_embed.{diff}.linear_1")
        rules += _linear(f"{ref}.mlp.2", f"time_text_embed.{diff}.linear_2")
    for i in range(arch.depth):
        r, d = f"joint_blocks.{i}", f"transformer_blocks.{i}"
        last = i == arch.depth - 1
        streams = [("x_block", "attn", ("to_q", "to_k", "to_v"), ("norm_q", "norm_k"), "to_out.0", "norm1", "ff")]
        streams.append(("context_block", "attn", ("add_q_proj", "add_k_proj", "add_v_proj"),
                        ("norm_added_q", "norm_added_k"), "to_add_out", "norm1_context", "ff_context"))  # fmt: skip
        for block, attn, qkv, norms, out, mod, ff in streams:
            pre_only = last and block == "context_block"
            rules += _split(f"{r}.{block}.{attn}.qkv", tuple(f"{d}.{attn}.{n}" for n in qkv), (h, h, h))
            if arch.qk_norm:
                rules.append(Fused(f"{r}.{block}.attn.ln_q.weight", (f"{d}.attn.{norms[0]}.weight",)))
                rules.append(Fused(f"{r}.{block}.attn.ln_k.weight", (f"{d}.attn.{norms[1]}.weight",)))
            rules.append(Fused(f"{r}.{block}.adaLN_modulation.1.weight", (f"{d}.{mod}.linear.weight",), swap=pre_only))
            rules.append(Fused(f"{r}.{block}.adaLN_modulation.1.bias", (f"{d}.{mod}.linear.bias",), swap=pre_only))
            if pre_only:
                continue
            rules += _linear(f"{r}.{block}.attn.proj", f"{d}.attn.{out}")
            rules += _linear(f"{r}.{block}.mlp.fc1", f"{d}.{ff}.net.0.proj")
            rules += _linear(f"{r}.{block}.mlp.fc2", f"{d}.{ff}.net.2")
        if i in arch.dual_attention:
            rules += _split(f"{r}.x_block.attn2.qkv", tuple(f"{d}.attn2.{n}" for n in ("to_q", "to_k", "to_v")),
                            (h, h, h))  # fmt: skip
            if arch.qk_norm:
                rules.append(Fused(f"{r}.x_block.attn2.ln_q.weight", (f"{d}.attn2.norm_q.weight",)))
                rules.append(Fused(f"{r}.x_block.attn2.ln_k.weight", (f"{d}.attn2.norm_k.weight",)))
            rules += _linear(f"{r}.x_block.attn2.proj", f"{d}.attn2.to_out.0")
    rules += _linear("final_layer.linear", "proj_out")
    rules.append(Fused("final_layer.adaLN_modulation.1.weight", ("norm_out.linear.weight",), swap=True))
    rules.append(Fused("final_layer.adaLN_modulation.1.bias", ("norm_out.linear.bias",), swap=True))
    return rules


def to_reference(state: Mapping[str, torch.Tensor], arch: SD3Arch, prefix: str = "") -> dict[str, torch.Tensor]:
    """diffusers-named tensors in the reference layout (for writing stand-ins)."""
    return fuse(sd3_table(arch), state, prefix)
