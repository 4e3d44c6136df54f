"""LoraLoader and LoraLoaderModelOnly: a MODEL/CLIP with a LoRA file's deltas, the inputs left untouched;
LoraModelLoader applies LoRA tensors held in memory (LORA_MODEL), LoraSave extracts a LoRA file from a model
difference.

Each node's fingerprint is the LoRA file's identity (path, size, mtime), so the engine cache keys a patched model by
(base model signature, LoRA file, strengths): re-running costs nothing, and changing only the prompt downstream
does not re-patch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from engine.context import NodeContext
from engine.native import Boolean, Combo, Float, Int, Out, Socket, String, node
from nodes.files import OutputWriter
from nodes.shared import file_input, folders_of, model_file, model_files

STRENGTH = {"min": -100.0, "max": 100.0, "step": 0.01}
UNIT_NAMES = ("te1", "te2")


def describe_unmapped(lora_name: str, unmapped: Mapping[str, str]) -> str:
    """One warning naming every key that patches nothing, grouped by the reason."""
    by_reason: dict[str, list[str]] = {}
    for key, reason in unmapped.items():
        by_reason.setdefault(reason, []).append(key)
    parts = [f"{reason}: {', '.join(keys)}" for reason, keys in by_reason.items()]
    return f"LoRA {lora_name}: {len(unmapped)} keys were not applied ({'; '.join(parts)})"


def apply_lora(
    model: Any, clip: Any, lora_name: str, strength_model: float, strength_clip: float, ctx: NodeContext
) -> tuple[Any, Any]:
    """`model` (a DiffusionModel) and `clip` (a TextEncoder, or None) with the LoRA applied as shared copies."""
    from diffusion.checkpoint import read_tensors

    path = model_file(ctx.env, "loras", lora_name, "lora_name")
    return apply_lora_tensors(model, clip, read_tensors(path), lora_name, strength_model, strength_clip, ctx.warn)


def apply_lora_tensors(
    model: Any,
    clip: Any,
    tensors: Mapping[str, Any],
    lora_name: str,
    strength_model: float,
    strength_clip: float,
    warn: Callable[[str], None],
) -> tuple[Any, Any]:
    """The same from a LoRA's tensors already in memory (what packs hand `comfy.sd.load_lora_for_models`)."""
    from diffusion.lora import apply_patches, match_lora

    components: dict[str, Any] = {"unet": model.unet}
    units = tuple(clip.units) if clip is not None else ()
    components.update({name: unit.module for name, unit in zip(UNIT_NAMES, units, strict=False)})
    match = match_lora(tensors, components)
    if match.unmapped:
        warn(describe_unmapped(lora_name, match.unmapped))
    if not match.patches:
        raise ValueError(f"lora_name: no key of {lora_name!r} matches a layer of this model (wrong model family?)")
    strengths = {"unet": strength_model} | dict.fromkeys(UNIT_NAMES, strength_clip if clip is not None else 0.0)
    patched = apply_patches(components, match.patches, strengths)
    if patched["unet"] is not model.unet:
        model = model.with_unet(patched["unet"])
    if clip is not None and any(patched[n] is not u.module for n, u in zip(UNIT_NAMES, units, strict=False)):
        clip = clip.with_units(tuple(replace(u, module=patched[n]) for n, u in zip(UNIT_NAMES, units, strict=False)))
    return model, clip


@node(
    category="loaders",
    outputs=[Out("MODEL"), Out("CLIP")],
    display_name="Load LoRA",
    fingerprint=file_input("loras", "lora_name"),
)
def LoraLoader(
    model: Any = Socket("MODEL"),
    clip: Any = Socket("CLIP"),
    lora_name: str = Combo(model_files("loras")),
    strength_model: float = Float(1.0, **STRENGTH),
    strength_clip: float = Float(1.0, **STRENGTH),
    *,
    ctx: NodeContext,
) -> tuple:
    """Apply a LoRA to the diffusion model and the text encoder; keys that match no layer are named in a warning."""
    return apply_lora(model, clip, lora_name, strength_model, strength_clip, ctx)


@node(category="loaders", outputs=[Out("MODEL")], fingerprint=file_input("loras", "lora_name"))
def LoraLoaderModelOnly(
    model: Any = Socket("MODEL"),
    lora_name: str = Combo(model_files("loras")),
    strength_model: float = Float(1.0, **STRENGTH),
    *,
    ctx: NodeContext,
) -> tuple:
    """Apply a LoRA to the diffusion model only."""
    return (apply_lora(model, None, lora_name, strength_model, 0.0, ctx)[0],)


def _lora_tensors(lora: Any) -> Mapping[str, Any]:
    import torch

    if not isinstance(lora, Mapping) or not all(isinstance(v, torch.Tensor) for v in lora.values()):
        raise ValueError("lora: expected a LORA_MODEL, a mapping of LoRA key names to tensors")
    return lora


@node(category="loaders", outputs=[Out("MODEL", "model")], display_name="Load LoRA Model", experimental=True)
def LoraModelLoader(
    model: Any = Socket("MODEL"),
    lora: Any = Socket("LORA_MODEL"),
    strength_model: float = Float(1.0, min=-100.0, max=100.0),
    *,
    ctx: NodeContext,
) -> tuple:
    """Apply LoRA weights held in memory (a LORA_MODEL: key name -> tensor, as training nodes and packs produce)
    to the diffusion model; keys that match no layer are named in a warning."""
    tensors = _lora_tensors(lora)
    if strength_model == 0.0:
        return (model,)
    return (apply_lora_tensors(model, None, tensors, "lora", strength_model, 0.0, ctx.warn)[0],)


@node(category="_for_testing", outputs=[], output_node=True, display_name="Extract and Save Lora")
def LoraSave(
    filename_prefix: str = String("loras/Loom_extracted_lora"),
    rank: int = Int(8, min=1, max=4096, step=1),
    lora_type: str = Combo(("standard", "full_diff")),
    bias_diff: bool = Boolean(True),
    model_diff: Any = Socket("MODEL", optional=True),
    text_encoder_diff: Any = Socket("CLIP", optional=True),
    *,
    ctx: NodeContext,
) -> dict[str, Any]:
    """Turn a model difference (ModelMergeSubtract / CLIPMergeSubtract of a finetune and its base) into a LoRA
    file in the output folder: rank-`rank` factors per layer ("standard") or whole differences ("full_diff")."""
    from diffusion.lora_extract import ExtractOptions, extract, text_stems, unet_stems
    from diffusion.save import encode, lora_metadata

    if model_diff is None and text_encoder_diff is None:
        ctx.warn("LoraSave: neither model_diff nor text_encoder_diff is connected; no file was written")
        return {"ui": {}, "result": ()}
    options = ExtractOptions(rank, lora_type, bias_diff)
    tensors: dict[str, Any] = {}
    if model_diff is not None:
        tensors |= extract(model_diff.unet, unet_stems(model_diff.unet), options)
    if text_encoder_diff is not None:
        for unit in text_encoder_diff.units:
            tensors |= extract(unit.module, text_stems(unit.module, unit.arch.name), options)
    if not tensors:
        ctx.warn("the model difference is zero everywhere: the LoRA file holds no tensors")
    family = (model_diff or text_encoder_diff).family
    writer = OutputWriter(folders_of(ctx.env).output, "output", filename_prefix)
    writer.write(encode(tensors, lora_metadata(family, writer.stem, rank, lora_type)), "safetensors")
    return {"ui": {}, "result": ()}
