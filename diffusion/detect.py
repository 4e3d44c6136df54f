"""Tell a checkpoint's family and architecture from its tensor names and shapes alone.

Works on a `{name: shape}` table, so a full-size file and a tiny test file of the same family need no per-size
config, and detection never reads a weight. Settings that shapes cannot show (attention heads, VAE scaling,
prediction type) come from the family's bundled defaults in `diffusion/configs/`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

Shapes = Mapping[str, tuple[int, ...]]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
FAMILIES = ("sd1", "sd2", "sdxl")


class UnknownModel(ValueError):
    """A file whose tensors match no supported layout; the message says what was found."""


@cache
def family_defaults(family: str) -> dict[str, Any]:
    """The bundled defaults of a family (read once; treat as read-only)."""
    return json.loads((CONFIG_DIR / f"{family}.json").read_text())


@dataclass(frozen=True)
class UNetArch:
    in_channels: int
    out_channels: int
    block_channels: tuple[int, ...]
    layers_per_block: int
    attention: tuple[bool, ...]
    transformer_depth: tuple[int, ...]
    mid_attention: bool
    mid_transformer_depth: int
    context_dim: int
    linear_projection: bool
    adm_in_channels: int | None
    heads: tuple[int, ...]
    class_embedding: bool = False  # the adm input is a class label (unCLIP's image embedding), not SDXL's sizes


@dataclass(frozen=True)
class VAEArch:
    in_channels: int
    latent_channels: int
    block_channels: tuple[int, ...]
    layers_per_block: int
    scaling_factor: float
    quant_conv: bool = True  # FLUX's and SD3's VAEs have no quant_conv/post_quant_conv
    shift_factor: float = 0.0


@dataclass(frozen=True)
class TextArch:
    name: str
    prefix: str
    layout: str  # "hf" (transformers CLIP names) or "openclip"
    hidden: int
    layers: int
    intermediate: int
    heads: int
    vocab: int
    max_positions: int
    projection_dim: int | None
    hidden_act: str
    pad_token: int
    default_layer: int
    final_norm_on_skip: bool
    pooled: bool


@dataclass(frozen=True)
class ModelInfo:
    family: str
    prediction: str
    unet: UNetArch | None
    vae: VAEArch | None
    text: tuple[TextArch, ...]

    @property
    def defaults(self) -> dict[str, Any]:
        return family_defaults(self.family)

    def describe(self) -> str:
        parts = [family_defaults(self.family)["label"], f"{self.prediction}-prediction"]
        if self.unet:
            parts.append(f"UNet {list(self.unet.block_channels)} ctx {self.unet.context_dim}")
        return ", ".join(parts)


def _indices(shapes: Shapes, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in shapes if (m := rx.match(k))})


def detect_unet(shapes: Shapes, prefix: str = UNET_PREFIX, family: str | None = None) -> UNetArch:
    """The UNet's block layout from `input_blocks`/`middle_block` names and conv/linear shapes.

    `family` (for the head count) is guessed from the UNet alone when not given."""
    p = prefix
    conv_in = shapes.get(f"{p}input_blocks.0.0.weight")
    conv_out = shapes.get(f"{p}out.2.weight")
    if conv_in is None or conv_out is None:
        raise UnknownModel(f"no UNet found under {prefix!r} (missing input_blocks.0.0 or out.2)")
    levels: list[list[int]] = [[]]
    downsample_after: list[bool] = []
    for n in _indices(shapes, rf"{re.escape(p)}input_blocks\.(\d+)\.")[1:]:
        if f"{p}input_blocks.{n}.0.op.weight" in shapes:
            downsample_after.append(True)
            levels.append([])
        elif f"{p}input_blocks.{n}.0.in_layers.0.weight" in shapes:
            levels[-1].append(n)
        else:
            raise UnknownModel(f"UNet input block {n} is neither a resnet nor a downsampler")
    if not levels[-1]:
        raise UnknownModel("UNet ends with a downsampler")
    lpb = len(levels[0])
    if any(len(lv) != lpb for lv in levels):
        raise UnknownModel(f"UNet levels have different block counts: {[len(lv) for lv in levels]}")
    channels, attention, depth = [], [], []
    context_dim, linear = 0, False
    for lv in levels:
        channels.append(shapes[f"{p}input_blocks.{lv[0]}.0.out_layers.3.weight"][0])
        attn = f"{p}input_blocks.{lv[0]}.1.proj_in.weight" in shapes
        attention.append(attn)
        d = (
            len(_indices(shapes, rf"{re.escape(p)}input_blocks\.{lv[0]}\.1\.transformer_blocks\.(\d+)\."))
            if attn
            else 0
        )
        depth.append(d)
        if attn:
            context_dim = shapes[f"{p}input_blocks.{lv[0]}.1.transformer_blocks.0.attn2.to_k.weight"][1]
            linear = len(shapes[f"{p}input_blocks.{lv[0]}.1.proj_in.weight"]) == 2
    mid_attn = f"{p}middle_block.1.proj_in.weight" in shapes
    mid_depth = len(_indices(shapes, rf"{re.escape(p)}middle_block\.1\.transformer_blocks\.(\d+)\.")) if mid_attn else 0
    if mid_attn and not context_dim:
        context_dim = shapes[f"{p}middle_block.1.transformer_blocks.0.attn2.to_k.weight"][1]
    adm = shapes.get(f"{p}label_emb.0.0.weight")
    fam = family or guess_family(context_dim, adm is not None)
    defaults = family_defaults(fam)
    heads = tuple(defaults["unet_heads"] or max(1, c // defaults["unet_head_dim"]) for c in channels)
    return UNetArch(
        in_channels=conv_in[1],
        out_channels=conv_out[0],
        block_channels=tuple(channels),
        layers_per_block=lpb,
        attention=tuple(attention),
        transformer_depth=tuple(depth),
        mid_attention=mid_attn,
        mid_transformer_depth=mid_depth,
        context_dim=context_dim,
        linear_projection=linear,
        adm_in_channels=adm[1] if adm is not None else None,
        heads=heads,
        class_embedding=adm is not None and fam != "sdxl",
    )


def guess_family(context_dim: int, has_adm: bool, openclip_text: bool = False) -> str:
    """SDXL has the added (pooled + size) embedding; SD 2.x conditions on OpenCLIP states (1024 wide at full
    size, and stored under OpenCLIP's names), its unCLIP variant with an added embedding too; everything else is
    SD 1.x."""
    sd2 = context_dim == 1024 or openclip_text
    if has_adm and not sd2:
        return "sdxl"
    return "sd2" if sd2 else "sd1"


def detect_vae(shapes: Shapes, prefix: str = VAE_PREFIX, family: str = "sd1") -> VAEArch:
    p = prefix
    conv_in = shapes.get(f"{p}encoder.conv_in.weight")
    conv_out = shapes.get(f"{p}decoder.conv_in.weight")
    if conv_in is None or conv_out is None:
        raise UnknownModel(f"no VAE found under {prefix!r} (missing encoder.conv_in or decoder.conv_in)")
    levels = _indices(shapes, rf"{re.escape(p)}encoder\.down\.(\d+)\.")
    channels = tuple(shapes[f"{p}encoder.down.{i}.block.0.conv1.weight"][0] for i in levels)
    lpb = len(_indices(shapes, rf"{re.escape(p)}encoder\.down\.0\.block\.(\d+)\."))
    return VAEArch(
        in_channels=conv_in[1],
        latent_channels=conv_out[1],
        block_channels=channels,
        layers_per_block=lpb,
        scaling_factor=family_defaults(family)["vae_scaling_factor"],
        quant_conv=f"{p}quant_conv.weight" in shapes,
        shift_factor=family_defaults(family).get("vae_shift_factor", 0.0),
    )


def detect_text(shapes: Shapes, prefix: str, spec: Mapping[str, Any]) -> TextArch:
    """One CLIP text encoder, in transformers' names (`transformer.text_model.*`) or OpenCLIP's (`model.*`)."""
    p = prefix
    if spec["layout"] == "hf":
        t = f"{p}transformer.text_model."
        emb = shapes.get(f"{t}embeddings.token_embedding.weight")
        if emb is None:
            raise UnknownModel(f"no CLIP text encoder found under {t!r}")
        pos = shapes[f"{t}embeddings.position_embedding.weight"]
        layers = len(_indices(shapes, rf"{re.escape(t)}encoder\.layers\.(\d+)\."))
        inter = shapes[f"{t}encoder.layers.0.mlp.fc1.weight"][0]
        proj = shapes.get(f"{p}transformer.text_projection.weight")
        projection_dim = proj[0] if proj else None
    else:
        t = f"{p}model."
        emb = shapes.get(f"{t}token_embedding.weight")
        if emb is None:
            raise UnknownModel(f"no OpenCLIP text encoder found under {t!r}")
        pos = shapes[f"{t}positional_embedding"]
        layers = len(_indices(shapes, rf"{re.escape(t)}transformer\.resblocks\.(\d+)\."))
        inter = shapes[f"{t}transformer.resblocks.0.mlp.c_fc.weight"][0]
        proj = shapes.get(f"{t}text_projection")
        projection_dim = proj[1] if proj else None
    hidden = emb[1]
    return TextArch(
        name=spec["name"],
        prefix=prefix,
        layout=spec["layout"],
        hidden=hidden,
        layers=layers,
        intermediate=inter,
        heads=max(1, hidden // 64),
        vocab=emb[0],
        max_positions=pos[0],
        projection_dim=projection_dim if spec["pooled"] else None,
        hidden_act=spec["hidden_act"],
        pad_token=spec["pad_token"],
        default_layer=spec["default_layer"],
        final_norm_on_skip=spec["final_norm_on_skip"],
        pooled=spec["pooled"],
    )


TEXT_PREFIXES = {
    "sd1": ("cond_stage_model.",),
    "sd2": ("cond_stage_model.",),
    "sdxl": ("conditioner.embedders.0.", "conditioner.embedders.1."),
}


def detect(shapes: Shapes) -> ModelInfo:
    """Family and architecture of a single-file (LDM layout) checkpoint; UnknownModel names what was found."""
    if not any(k.startswith(UNET_PREFIX) for k in shapes):
        raise UnknownModel(f"not a Stable Diffusion checkpoint: no {UNET_PREFIX}* tensors; found {_summary(shapes)}")
    openclip = any(k.startswith("cond_stage_model.model.") for k in shapes)
    adm = f"{UNET_PREFIX}label_emb.0.0.weight" in shapes
    context = next(
        (s[1] for k, s in shapes.items() if k.startswith(UNET_PREFIX) and k.endswith("attn2.to_k.weight")), 0
    )
    family = guess_family(context, adm, openclip)
    unet = detect_unet(shapes, family=family)
    defaults = family_defaults(family)
    vae = detect_vae(shapes, family=family) if any(k.startswith(VAE_PREFIX) for k in shapes) else None
    texts = []
    for spec, prefix in zip(defaults["text_encoders"], TEXT_PREFIXES[family], strict=True):
        if any(k.startswith(prefix) for k in shapes):
            texts.append(detect_text(shapes, prefix, spec))
    prediction = defaults["prediction"]
    if "v_pred" in shapes or "edm_vpred.sigma_max" in shapes:
        prediction = "v"
    width = sum(t.hidden for t in texts)
    if len(texts) == len(defaults["text_encoders"]) and width != unet.context_dim:
        raise UnknownModel(f"text encoder width {width} does not match the UNet's context width {unet.context_dim}")
    return ModelInfo(family=family, prediction=prediction, unet=unet, vae=vae, text=tuple(texts))


def _summary(shapes: Shapes) -> str:
    """The top-level key prefixes of a file and their tensor counts, for error messages."""
    counts: dict[str, int] = {}
    for k in shapes:
        head = ".".join(k.split(".")[:2])
        counts[head] = counts.get(head, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:6]
    return ", ".join(f"{k}* ({n})" for k, n in top) or "no tensors"
