"""Text conditioning: CLIPTextEncode turns a prompt into CONDITIONING ([[tensor, {"pooled_output": ...}]])."""

from __future__ import annotations

from typing import Any

from engine.context import NodeContext
from engine.native import Float, Int, Out, Socket, String, node
from nodes.shared import MAX_RESOLUTION


@node(
    category="conditioning",
    outputs=[Out("CONDITIONING", "CONDITIONING", tooltip="The encoded prompt, for a sampler's positive or negative.")],
    display_name="CLIP Text Encode (Prompt)",
)
def CLIPTextEncode(
    text: str = String(
        multiline=True,
        dynamic_prompts=True,
        tooltip="(word:1.2) weights, (word) x1.1, [word] /1.1, embedding:NAME",
    ),
    clip: Any = Socket("CLIP"),
    *,
    ctx: NodeContext,
) -> list[list[Any]]:
    """Encode a prompt with the checkpoint's text encoder(s); long prompts are encoded in 77-token windows."""
    if clip is None:
        raise ValueError("clip: the checkpoint has no text encoder")
    return [[encoded.cond, {"pooled_output": encoded.pooled, **extras}] for encoded, extras in _encode(clip, text, ctx)]


def _encode(clip: Any, text: str, ctx: NodeContext, per_encoder: dict[str, str] | None = None) -> list[Any]:
    """(encoding, extra keys) per conditioning entry: one, or one per range of a hooked CLIP's schedule
    (SetClipHooks) with the hooks attached."""
    from diffusion.text_encoder import TextEncoder

    if isinstance(clip, TextEncoder):
        return clip.encode_scheduled(text, ctx.warn, per_encoder)
    return [(clip.encode(text, ctx.warn, per_encoder), {})]


@node(category="advanced/conditioning", outputs=["CONDITIONING"])
def CLIPTextEncodeSDXL(
    clip: Any = Socket("CLIP"),
    width: int = Int(1024, min=0, max=MAX_RESOLUTION),
    height: int = Int(1024, min=0, max=MAX_RESOLUTION),
    crop_w: int = Int(0, min=0, max=MAX_RESOLUTION),
    crop_h: int = Int(0, min=0, max=MAX_RESOLUTION),
    target_width: int = Int(1024, min=0, max=MAX_RESOLUTION),
    target_height: int = Int(1024, min=0, max=MAX_RESOLUTION),
    text_g: str = String(multiline=True, dynamic_prompts=True),
    text_l: str = String(multiline=True, dynamic_prompts=True),
    *,
    ctx: NodeContext,
) -> list[list[Any]]:
    """SDXL: a prompt per text encoder (text_g for OpenCLIP-bigG, text_l for CLIP-L) and the size conditioning."""
    if clip is None:
        raise ValueError("clip: the checkpoint has no text encoder")
    if clip.family != "sdxl":
        raise ValueError(f"clip: CLIPTextEncodeSDXL needs an SDXL text encoder, this one is {clip.family}")
    sizes = {
        "width": width,
        "height": height,
        "crop_w": crop_w,
        "crop_h": crop_h,
        "target_width": target_width,
        "target_height": target_height,
    }
    entries = _encode(clip, text_g, ctx, {"clip_l": text_l, "clip_g": text_g})
    return [[encoded.cond, {"pooled_output": encoded.pooled, **sizes, **extras}] for encoded, extras in entries]


@node(category="advanced/conditioning", outputs=["CONDITIONING"])
def CLIPTextEncodeSDXLRefiner(
    ascore: float = Float(6.0, min=0.0, max=1000.0, step=0.01),
    width: int = Int(1024, min=0, max=MAX_RESOLUTION),
    height: int = Int(1024, min=0, max=MAX_RESOLUTION),
    text: str = String(multiline=True, dynamic_prompts=True),
    clip: Any = Socket("CLIP"),
    *,
    ctx: NodeContext,
) -> list[list[Any]]:
    """SDXL refiner: the prompt, the image size and the aesthetic score the refiner was trained to condition on
    (its added time embedding holds size, crop and score instead of the base model's target size)."""
    if clip is None:
        raise ValueError("clip: the checkpoint has no text encoder")
    sizes = {"aesthetic_score": ascore, "width": width, "height": height}
    return [
        [encoded.cond, {"pooled_output": encoded.pooled, **sizes, **extras}]
        for encoded, extras in _encode(clip, text, ctx)
    ]
