"""FLUX.1 transformers: architecture from tensor names and shapes, and the reference <-> diffusers key layout.

Files come in the reference layout (`double_blocks.N.img_attn.qkv`, fused q/k/v and fused single-block
projections, often under `model.diffusion_model.`) or in diffusers' (`transformer_blocks.N.attn.to_q`). Every size
is read from shapes, so a tiny stand-in and the 12B model go through the same code. diffusers' own single-file
converter assumes the full-size hidden width (3072), so the conversion here is a table built from the detected sizes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from diffusion.detect import Shapes, UnknownModel, _indices

REFERENCE_MARK = "double_blocks.0.img_attn.qkv.weight"
DIFFUSERS_MARK = "transformer_blocks.0.attn.add_q_proj.weight"
DIFFUSERS_SINGLE = "single_transformer_blocks.0.proj_mlp.weight"


@dataclass(frozen=True)
class FluxArch:
    prefix: str
    layout: str  # "reference" or "diffusers"
    latent_channels: int
    hidden: int
    head_dim: int
    double_blocks: int
    single_blocks: int
    context_dim: int
    pooled_dim: int
    guidance: bool

    @property
    def heads(self) -> int:
        return self.hidden // self.head_dim

    @property
    def variant(self) -> str:
        """dev is guidance-distilled (takes a guidance embedding); schnell has none."""
        return "dev" if self.guidance else "schnell"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FluxArch:
        """The architecture of a built FluxTransformer2DModel, from its constructor arguments."""
        return cls(
            prefix="",
            layout="diffusers",
            latent_channels=int(config["in_channels"]) // 4,
            hidden=int(config["num_attention_heads"]) * int(config["attention_head_dim"]),
            head_dim=int(config["attention_head_dim"]),
            double_blocks=int(config["num_layers"]),
            single_blocks=int(config["num_single_layers"]),
            context_dim=int(config["joint_attention_dim"]),
            pooled_dim=int(config["pooled_projection_dim"]),
            guidance=bool(config["guidance_embeds"]),
        )

    def config(self) -> dict[str, Any]:
        """FluxTransformer2DModel's constructor arguments."""
        k = self.head_dim * 7 // 16 // 2 * 2  # the real model splits its 128-wide heads 16/56/56 for the 3 RoPE axes
        return {
            "patch_size": 1,
            "in_channels": self.latent_channels * 4,
            "num_layers": self.double_blocks,
            "num_single_layers": self.single_blocks,
            "attention_head_dim": self.head_dim,
            "num_attention_heads": self.heads,
            "joint_attention_dim": self.context_dim,
            "pooled_projection_dim": self.pooled_dim,
            "guidance_embeds": self.guidance,
            "axes_dims_rope": (self.head_dim - 2 * k, k, k),
        }


def find_prefix(shapes: Shapes, mark: str) -> str | None:
    """The prefix under which `mark` occurs (e.g. `model.diffusion_model.`), or None."""
    for key in shapes:
        if key.endswith(mark):
            return key[: -len(mark)]
    return None


def is_flux(shapes: Shapes) -> bool:
    if find_prefix(shapes, REFERENCE_MARK) is not None:
        return True
    prefix = find_prefix(shapes, DIFFUSERS_MARK)
    return prefix is not None and f"{prefix}{DIFFUSERS_SINGLE}" in shapes


def detect_flux(shapes: Shapes) -> FluxArch:
    """The FLUX architecture of a file in either layout; UnknownModel when it is neither."""
    prefix = find_prefix(shapes, REFERENCE_MARK)
    try:
        if prefix is not None:
            p = re.escape(prefix)
            return FluxArch(
                prefix=prefix,
                layout="reference",
                latent_channels=shapes[f"{prefix}img_in.weight"][1] // 4,
                hidden=shapes[f"{prefix}img_in.weight"][0],
                head_dim=shapes[f"{prefix}double_blocks.0.img_attn.norm.query_norm.scale"][0],
                double_blocks=len(_indices(shapes, rf"{p}double_blocks\.(\d+)\.")),
                single_blocks=len(_indices(shapes, rf"{p}single_blocks\.(\d+)\.")),
                context_dim=shapes[f"{prefix}txt_in.weight"][1],
                pooled_dim=shapes[f"{prefix}vector_in.in_layer.weight"][1],
                guidance=f"{prefix}guidance_in.in_layer.weight" in shapes,
            )
        prefix = find_prefix(shapes, DIFFUSERS_MARK)
        if prefix is None or f"{prefix}{DIFFUSERS_SINGLE}" not in shapes:
            raise UnknownModel("no FLUX transformer blocks (double_blocks.* or transformer_blocks.*.attn.add_q_proj)")
        p = re.escape(prefix)
        return FluxArch(
            prefix=prefix,
            layout="diffusers",
            latent_channels=shapes[f"{prefix}x_embedder.weight"][1] // 4,
            hidden=shapes[f"{prefix}x_embedder.weight"][0],
            head_dim=shapes[f"{prefix}transformer_blocks.0.attn.norm_q.weight"][0],
            double_blocks=len(_indices(shapes, rf"{p}transformer_blocks\.(\d+)\.")),
            single_blocks=len(_indices(shapes, rf"{p}single_transformer_blocks\.(\d+)\.")),
            context_dim=shapes[f"{prefix}context_embedder.weight"][1],
            pooled_dim=shapes[f"{prefix}time_text_embed.text_embedder.linear_1.weight"][1],
            guidance=f"{prefix}time_text_embed.guidance_embedder.linear_1.weight" in shapes,
        )
    except KeyError as exc:
        raise UnknownModel(f"incomplete FLUX transformer: missing {exc}") from exc


@dataclass(frozen=True)
class Fused:
    """One reference tensor and the diffusers tensors it holds, stacked along dim 0 in `sizes` (None: one tensor).
    `swap`: the reference stores the two halves as (shift, scale), diffusers as (scale, shift)."""

    ref: str
    parts: tuple[str, ...]
    sizes: tuple[int, ...] | None = None
    swap: bool = False


def _linear(ref: str, diff: str) -> list[Fused]:
    return [Fused(f"{ref}.weight", (f"{diff}.weight",)), Fused(f"{ref}.bias", (f"{diff}.bias",))]


def _split(ref: str, diffs: tuple[str, ...], sizes: tuple[int, ...]) -> list[Fused]:
    return [
        Fused(f"{ref}.weight", tuple(f"{d}.weight" for d in diffs), sizes),
        Fused(f"{ref}.bias", tuple(f"{d}.bias" for d in diffs), sizes),
    ]


def flux_table(arch: FluxArch) -> list[Fused]:
    """Every tensor of the model as a reference <-> diffusers rule (without the file's prefix)."""
    h, mlp = arch.hidden, arch.hidden * 4
    rules = _linear("img_in", "x_embedder") + _linear("txt_in", "context_embedder")
    embedders = [("time_in", "timestep_embedder"), ("vector_in", "text_embedder")]
    if arch.guidance:
        embedders.append(("guidance_in", "guidance_embedder"))
    for ref, diff in embedders:
        rules += _linear(f"{ref}.in_layer", f"time_text_embed.{diff}.linear_1")
        rules += _linear(f"{ref}.out_layer", f"time_text_embed.{diff}.linear_2")
    for i in range(arch.double_blocks):
        r, d = f"double_blocks.{i}", f"transformer_blocks.{i}"
        for stream, mod, q, k, v, out, ff, nq, nk in (
            ("img", "norm1", "to_q", "to_k", "to_v", "to_out.0", "ff", "norm_q", "norm_k"),
            ("txt", "norm1_context", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out", "ff_context",
             "norm_added_q", "norm_added_k"),
        ):  # fmt: skip
            rules += _linear(f"{r}.{stream}_mod.lin", f"{d}.{mod}.linear")
            rules += _split(f"{r}.{stream}_attn.qkv", (f"{d}.attn.{q}", f"{d}.attn.{k}", f"{d}.attn.{v}"), (h, h, h))
            rules.append(Fused(f"{r}.{stream}_attn.norm.query_norm.scale", (f"{d}.attn.{nq}.weight",)))
            rules.append(Fused(f"{r}.{stream}_attn.norm.key_norm.scale", (f"{d}.attn.{nk}.weight",)))
            rules += _linear(f"{r}.{stream}_attn.proj", f"{d}.attn.{out}")
            rules += _linear(f"{r}.{stream}_mlp.0", f"{d}.{ff}.net.0.proj")
            rules += _linear(f"{r}.{stream}_mlp.2", f"{d}.{ff}.net.2")
    for i in range(arch.single_blocks):
        r, d = f"single_blocks.{i}", f"single_transformer_blocks.{i}"
        qkv_mlp = (f"{d}.attn.to_q", f"{d}.attn.to_k", f"{d}.attn.to_v", f"{d}.proj_mlp")
        rules += _split(f"{r}.linear1", qkv_mlp, (h, h, h, mlp))
        rules += _linear(f"{r}.linear2", f"{d}.proj_out")
        rules.append(Fused(f"{r}.norm.query_norm.scale", (f"{d}.attn.norm_q.weight",)))
        rules.append(Fused(f"{r}.norm.key_norm.scale", (f"{d}.attn.norm_k.weight",)))
        rules += _linear(f"{r}.modulation.lin", f"{d}.norm.linear")
    rules += _linear("final_layer.linear", "proj_out")
    rules.append(Fused("final_layer.adaLN_modulation.1.weight", ("norm_out.linear.weight",), swap=True))
    rules.append(Fused("final_layer.adaLN_modulation.1.bias", ("norm_out.linear.bias",), swap=True))
    return rules


@dataclass(frozen=True)
class LayerPart:
    """A diffusers layer holding rows `rows` (None: all) of a reference layer's output, `swap`ped as in Fused."""

    module: str
    rows: tuple[int, int] | None
    swap: bool = False


def reference_layers(rules: list[Fused]) -> dict[str, tuple[LayerPart, ...]]:
    """Reference layer name (`double_blocks.0.img_attn.qkv`) -> the diffusers layers its output rows feed, for
    every layer of a key table (`flux_table`): what a LoRA trained on the fused layers patches in the split ones."""
    out: dict[str, tuple[LayerPart, ...]] = {}
    for rule in rules:
        if not rule.ref.endswith(".weight"):
            continue
        names = tuple(part.removesuffix(".weight") for part in rule.parts)
        if rule.sizes is None:
            out[rule.ref.removesuffix(".weight")] = (LayerPart(names[0], None, rule.swap),)
            continue
        ends = [sum(rule.sizes[: i + 1]) for i in range(len(rule.sizes))]
        starts = [0, *ends[:-1]]
        parts = tuple(LayerPart(n, (a, b), rule.swap) for n, a, b in zip(names, starts, ends, strict=True))
        out[rule.ref.removesuffix(".weight")] = parts
    return out


def _swap_halves(t: torch.Tensor) -> torch.Tensor:
    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def to_diffusers(state: Mapping[str, torch.Tensor], arch: FluxArch) -> dict[str, torch.Tensor]:
    """The transformer's tensors under diffusers' names, from a file in either layout."""
    p = arch.prefix
    if arch.layout == "diffusers":
        return {k[len(p) :]: state[k] for k in state if k.startswith(p)}
    out: dict[str, torch.Tensor] = {}
    for rule in flux_table(arch):
        key = p + rule.ref
        if key not in state:
            raise UnknownModel(f"incomplete FLUX transformer: missing {key}")
        tensor = state[key]
        if rule.swap:
            tensor = _swap_halves(tensor)
        pieces = tensor.split(list(rule.sizes), dim=0) if rule.sizes else (tensor,)
        if len(pieces) != len(rule.parts):
            raise UnknownModel(f"{key}: shape {tuple(tensor.shape)} does not split into {rule.sizes}")
        out.update(zip(rule.parts, pieces, strict=True))
    return out


def fuse(rules: list[Fused], state: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """diffusers-named tensors joined into the reference tensors `rules` describe (any DiT family's table)."""
    out: dict[str, torch.Tensor] = {}
    for rule in rules:
        tensor = torch.cat([state[k] for k in rule.parts], dim=0)
        out[prefix + rule.ref] = _swap_halves(tensor) if rule.swap else tensor
    return out


def to_reference(state: Mapping[str, torch.Tensor], arch: FluxArch, prefix: str = "") -> dict[str, torch.Tensor]:
    """The inverse of to_diffusers: diffusers-named tensors in the reference layout (for writing stand-ins)."""
    return fuse(flux_table(arch), state, prefix)
