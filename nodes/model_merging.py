"""Model merging and saving: weighted sums of two diffusion models or text encoders (whole, or per LDM block),
and checkpoints, diffusion models, text encoders and VAEs written as single-file LDM-layout safetensors with the
workflow in their metadata."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine.context import NodeContext
from engine.native import Float, Hidden, Socket, String, node
from nodes.files import OutputWriter
from nodes.imageio import text_chunks
from nodes.shared import folders_of

CATEGORY = "advanced/model_merging"
MODEL, CLIP, VAE = Socket("MODEL"), Socket("CLIP"), Socket("VAE")
RATIO = {"min": 0.0, "max": 1.0, "step": 0.01}
MULTIPLIER = {"min": -10.0, "max": 10.0, "step": 0.01}
CLIP_SKIP = (".position_ids", ".logit_scale")  # not weights: never merged


def _need(value: Any, name: str) -> Any:
    if value is None:
        raise ValueError(f"{name}: the checkpoint has none")
    return value


def merge_models(model1: Any, model2: Any, weights: Any, ctx: NodeContext | None) -> Any:
    """model1 with its UNet merged with model2's by `weights`; parameters model2 lacks keep model1's values."""
    from diffusion.merge import merge_modules

    merged = merge_modules(_need(model1, "model1").unet, _need(model2, "model2").unet, weights)
    if merged.mismatched and ctx is not None:
        ctx.warn(f"{len(merged.mismatched)} tensors of model1 have no match in model2 and were kept as they are")
    return model1.with_unet(merged.module)


def merge_clips(clip1: Any, clip2: Any, weights: Any, ctx: NodeContext | None) -> Any:
    """clip1 with each text encoder merged with clip2's encoder of the same position."""
    from diffusion.merge import merge_modules

    clip1, clip2 = _need(clip1, "clip1"), _need(clip2, "clip2")
    if len(clip1.units) != len(clip2.units):
        raise ValueError(f"clip2 has {len(clip2.units)} text encoders and clip1 {len(clip1.units)}: they cannot merge")
    units, mismatched = [], 0
    for a, b in zip(clip1.units, clip2.units, strict=True):
        merged = merge_modules(a.module, b.module, weights, skip=CLIP_SKIP)
        mismatched += len(merged.mismatched)
        units.append(replace(a, module=merged.module))
    if mismatched and ctx is not None:
        ctx.warn(f"{mismatched} tensors of clip1 have no match in clip2 and were kept as they are")
    return replace(clip1, units=tuple(units), view=False)


def _constant(a: float, b: float) -> Any:
    return lambda _name: (a, b)


@node(category=CATEGORY, outputs=["MODEL"])
def ModelMergeSimple(
    model1: Any = MODEL, model2: Any = MODEL, ratio: float = Float(1.0, **RATIO), *, ctx: NodeContext
) -> Any:
    """ratio * model1 + (1 - ratio) * model2 (ratio 1 is model1)."""
    return merge_models(model1, model2, _constant(ratio, 1.0 - ratio), ctx)


@node(category=CATEGORY, outputs=["MODEL"])
def ModelMergeSubtract(
    model1: Any = MODEL, model2: Any = MODEL, multiplier: float = Float(1.0, **MULTIPLIER), *, ctx: NodeContext
) -> Any:
    """multiplier * (model1 - model2): a difference model, to add to another with ModelMergeAdd."""
    return merge_models(model1, model2, _constant(multiplier, -multiplier), ctx)


@node(category=CATEGORY, outputs=["MODEL"])
def ModelMergeAdd(model1: Any = MODEL, model2: Any = MODEL, *, ctx: NodeContext) -> Any:
    return merge_models(model1, model2, _constant(1.0, 1.0), ctx)


def merge_blocks(model1: Any, model2: Any, ratios: dict[str, float], ctx: NodeContext | None) -> Any:
    """Per-block ratios keyed by LDM name prefixes (`input_blocks.4.`, `middle_block`, `out.`); parameters under no
    prefix take the first ratio given, as the reference does."""
    from diffusion.ldm_names import ldm_state_dict_names
    from diffusion.merge import by_prefix

    names = ldm_state_dict_names(_need(model1, "model1").unet)
    default = next(iter(ratios.values()))
    return merge_models(model1, model2, by_prefix(names, ratios, default), ctx)


@node(category=CATEGORY, outputs=["MODEL"])
def ModelMergeBlocks(
    model1: Any = MODEL,
    model2: Any = MODEL,
    input: float = Float(1.0, **RATIO),
    middle: float = Float(1.0, **RATIO),
    out: float = Float(1.0, **RATIO),
    *,
    ctx: NodeContext,
) -> Any:
    """Like ModelMergeSimple with one ratio for the input blocks, one for the middle and one for the output ones."""
    return merge_blocks(model1, model2, {"input": input, "middle": middle, "out": out}, ctx)


@node(category=CATEGORY, outputs=["CLIP"])
def CLIPMergeSimple(
    clip1: Any = CLIP, clip2: Any = CLIP, ratio: float = Float(1.0, **RATIO), *, ctx: NodeContext
) -> Any:
    return merge_clips(clip1, clip2, _constant(ratio, 1.0 - ratio), ctx)


@node(category=CATEGORY, outputs=["CLIP"])
def CLIPMergeSubtract(
    clip1: Any = CLIP, clip2: Any = CLIP, multiplier: float = Float(1.0, **MULTIPLIER), *, ctx: NodeContext
) -> Any:
    return merge_clips(clip1, clip2, _constant(multiplier, -multiplier), ctx)


@node(category=CATEGORY, outputs=["CLIP"])
def CLIPMergeAdd(clip1: Any = CLIP, clip2: Any = CLIP, *, ctx: NodeContext) -> Any:
    return merge_clips(clip1, clip2, _constant(1.0, 1.0), ctx)


def _save(
    ctx: NodeContext, prefix: str, tensors: dict[str, Any], family: str, prediction: str, prompt: Any, pnginfo: Any
) -> dict[str, Any]:
    """Write `tensors` as the next `<prefix>_NNNNN_.safetensors` in the output folder (never overwriting)."""
    from diffusion.save import encode, model_metadata

    writer = OutputWriter(folders_of(ctx.env).output, "output", prefix, prompt=prompt)
    meta = model_metadata(family, prediction, writer.stem, text_chunks(prompt, pnginfo))
    writer.write(encode(tensors, meta), "safetensors")
    return {"ui": {}, "result": ()}


def _text_tensors(clip: Any) -> dict[str, Any]:
    from diffusion.save import text_state

    out: dict[str, Any] = {}
    for unit in _need(clip, "clip").units:
        out.update(text_state(unit.module, unit.arch))
    return out


def _vae_tensors(vae: Any) -> dict[str, Any]:
    from diffusion.save import vae_arch, vae_state

    vae = _need(vae, "vae")
    return vae_state(vae.module, vae_arch(vae.module, vae.scaling_factor))


def _unet_tensors(model: Any, prefix: str | None = None) -> dict[str, Any]:
    from diffusion.save import unet_state

    model = _need(model, "model")
    return unet_state(model.unet) if prefix is None else unet_state(model.unet, prefix)


@node(category=CATEGORY, outputs=[], output_node=True, display_name="Save Checkpoint")
def CheckpointSave(
    model: Any = MODEL,
    clip: Any = CLIP,
    vae: Any = VAE,
    filename_prefix: str = String("checkpoints/Loom"),
    prompt: Any = Hidden("PROMPT"),
    extra_pnginfo: Any = Hidden("EXTRA_PNGINFO"),
    *,
    ctx: NodeContext,
) -> dict[str, Any]:
    """Save model, text encoder(s) and VAE as one single-file checkpoint that CheckpointLoaderSimple loads."""
    tensors = _unet_tensors(model) | _text_tensors(clip) | _vae_tensors(vae)
    return _save(ctx, filename_prefix, tensors, model.family, model.prediction, prompt, extra_pnginfo)


@node(category=CATEGORY, outputs=[], output_node=True)
def ModelSave(
    model: Any = MODEL,
    filename_prefix: str = String("diffusion_models/Loom"),
    prompt: Any = Hidden("PROMPT"),
    extra_pnginfo: Any = Hidden("EXTRA_PNGINFO"),
    *,
    ctx: NodeContext,
) -> dict[str, Any]:
    """Save the diffusion model alone, under its LDM names without the checkpoint's `model.diffusion_model.`."""
    tensors = _unet_tensors(model, prefix="")
    return _save(ctx, filename_prefix, tensors, model.family, model.prediction, prompt, extra_pnginfo)


@node(category=CATEGORY, outputs=[], output_node=True)
def CLIPSave(
    clip: Any = CLIP,
    filename_prefix: str = String("clip/Loom"),
    prompt: Any = Hidden("PROMPT"),
    extra_pnginfo: Any = Hidden("EXTRA_PNGINFO"),
    *,
    ctx: NodeContext,
) -> dict[str, Any]:
    """Save the text encoder(s) under the names a checkpoint gives them."""
    return _save(ctx, filename_prefix, _text_tensors(clip), clip.family, "eps", prompt, extra_pnginfo)


@node(category=CATEGORY, outputs=[], output_node=True)
def VAESave(
    vae: Any = VAE,
    filename_prefix: str = String("vae/Loom_vae"),
    prompt: Any = Hidden("PROMPT"),
    extra_pnginfo: Any = Hidden("EXTRA_PNGINFO"),
    *,
    ctx: NodeContext,
) -> dict[str, Any]:
    """Save the VAE in the layout VAELoader reads."""
    from diffusion.detect import VAE_PREFIX

    tensors = {k.removeprefix(VAE_PREFIX): v for k, v in _vae_tensors(vae).items()}
    return _save(ctx, filename_prefix, tensors, "", "eps", prompt, extra_pnginfo)


def _block_ratios(*prefixes: str) -> dict[str, Any]:
    return {prefix: Float(1.0, **RATIO) for prefix in prefixes}


SD1_BLOCKS = _block_ratios(
    "time_embed.",
    "label_emb.",
    *(f"input_blocks.{i}." for i in range(12)),
    *(f"middle_block.{i}." for i in range(3)),
    *(f"output_blocks.{i}." for i in range(12)),
    "out.",
)
SDXL_BLOCKS = _block_ratios(
    "time_embed.",
    "label_emb.",
    *(f"input_blocks.{i}." for i in range(9)),
    *(f"middle_block.{i}." for i in range(3)),
    *(f"output_blocks.{i}." for i in range(9)),
    "out.",
)
SPECIFIC = CATEGORY + "/model_specific"


@node(category=SPECIFIC, outputs=["MODEL"], inputs=SD1_BLOCKS)
def ModelMergeSD1(model1: Any = MODEL, model2: Any = MODEL, *, ctx: NodeContext, **ratios: float) -> Any:
    """A ratio per SD 1.x UNet block (LDM names), as in ModelMergeSimple; parameters of no listed block (none in
    SD 1.x) take time_embed's ratio."""
    return merge_blocks(model1, model2, ratios, ctx)


@node(category=SPECIFIC, outputs=["MODEL"], inputs=SD1_BLOCKS)
def ModelMergeSD2(model1: Any = MODEL, model2: Any = MODEL, *, ctx: NodeContext, **ratios: float) -> Any:
    """A ratio per SD 2.x UNet block; the blocks are SD 1.x's."""
    return merge_blocks(model1, model2, ratios, ctx)


@node(category=SPECIFIC, outputs=["MODEL"], inputs=SDXL_BLOCKS)
def ModelMergeSDXL(model1: Any = MODEL, model2: Any = MODEL, *, ctx: NodeContext, **ratios: float) -> Any:
    """A ratio per SDXL UNet block (LDM names)."""
    return merge_blocks(model1, model2, ratios, ctx)
