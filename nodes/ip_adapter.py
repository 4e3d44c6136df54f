"""IP-Adapter image prompts: load an adapter, encode reference images, apply them to a model.

IPAdapterApply encodes and applies in one node; IPAdapterEncoder weights several reference images into one
IP_ADAPTER_EMBEDS prompt that IPAdapterApplyEncoded applies. Applying returns a new MODEL around a shared copy of
the UNet; the loaded model is never changed.
"""

from __future__ import annotations

from typing import Any

from engine.context import NodeContext
from engine.native import Combo, Float, Out, Socket, node
from nodes.shared import file_input, model_file, model_files, naming_input

WEIGHT_TYPES = ["linear", "ease in", "ease out"]
WEIGHT = Float(1.0, min=-1.0, max=3.0, step=0.05)
IMAGE_WEIGHT = Float(1.0, min=0.0, max=1.0, step=0.01)
PERCENT_START = Float(0.0, min=0.0, max=1.0, step=0.001)
PERCENT_END = Float(1.0, min=0.0, max=1.0, step=0.001)


@node(
    category="ipadapter",
    outputs=[Out("IPADAPTER")],
    display_name="Load IPAdapter Model",
    fingerprint=file_input("ipadapter", "ipadapter_file"),
)
def IPAdapterModelLoader(ipadapter_file: str = Combo(model_files("ipadapter")), *, ctx: NodeContext) -> tuple:
    """Load an IP-Adapter (.bin or .safetensors) from models/ipadapter: base, light, plus, plus-face, full-face or
    ViT-G, for SD 1.5 or SDXL."""
    from diffusion.ip_adapter import load_ip_adapter

    path = model_file(ctx.env, "ipadapter", ipadapter_file, "ipadapter_file")
    with naming_input("ipadapter_file"):
        return (load_ip_adapter(path),)


def _apply(
    model: Any, ipadapter: Any, tokens: Any, weight: float, weight_type: str, start: float, end: float, attn_mask: Any
) -> Any:
    from diffusion.ip_adapter import IPAdapterError, apply_ip_adapter

    if weight == 0.0:
        return model
    if start > end:
        raise IPAdapterError(f"start_at: {start} is after end_at {end}")
    mask = None
    if attn_mask is not None:
        mask = attn_mask[0] if attn_mask.ndim == 3 else attn_mask
    unet = apply_ip_adapter(model.unet, ipadapter, tokens, weight, start, end, weight_type, mask)
    return model.with_unet(unet)


@node(category="ipadapter", outputs=[Out("MODEL")], display_name="Apply IPAdapter")
def IPAdapterApply(
    ipadapter: Any = Socket("IPADAPTER"),
    clip_vision: Any = Socket("CLIP_VISION"),
    image: Any = Socket("IMAGE"),
    model: Any = Socket("MODEL"),
    weight: float = WEIGHT,
    noise: float = Float(0.0, min=0.0, max=1.0, step=0.01),
    weight_type: str = Combo(WEIGHT_TYPES),
    start_at: float = PERCENT_START,
    end_at: float = PERCENT_END,
    attn_mask: Any = Socket("MASK", optional=True),
) -> tuple:
    """Prompt the model with reference images (a batch is one prompt of all of them), from start_at to end_at of
    the schedule; `attn_mask` limits it to a region of the image."""
    from diffusion.ip_adapter import image_tokens

    if weight == 0.0:
        return (model,)
    tokens = image_tokens(ipadapter, clip_vision, [(image, 1.0)], noise)
    return (_apply(model, ipadapter, tokens, weight, weight_type, start_at, end_at, attn_mask),)


@node(category="ipadapter", outputs=[Out("IP_ADAPTER_EMBEDS")], display_name="Encode IPAdapter Image")
def IPAdapterEncoder(
    ipadapter: Any = Socket("IPADAPTER"),
    clip_vision: Any = Socket("CLIP_VISION"),
    image_1: Any = Socket("IMAGE"),
    weight_1: float = IMAGE_WEIGHT,
    noise: float = Float(0.0, min=0.0, max=1.0, step=0.01),
    image_2: Any = Socket("IMAGE", optional=True),
    image_3: Any = Socket("IMAGE", optional=True),
    image_4: Any = Socket("IMAGE", optional=True),
    weight_2: float = Float(1.0, min=0.0, max=1.0, step=0.01, optional=True),
    weight_3: float = Float(1.0, min=0.0, max=1.0, step=0.01, optional=True),
    weight_4: float = Float(1.0, min=0.0, max=1.0, step=0.01, optional=True),
) -> tuple:
    """Several reference images, each with a weight, as one image prompt."""
    from diffusion.ip_adapter import image_tokens

    pairs = [(image_1, weight_1), (image_2, weight_2), (image_3, weight_3), (image_4, weight_4)]
    return (image_tokens(ipadapter, clip_vision, [(i, w) for i, w in pairs if i is not None], noise),)


@node(category="ipadapter", outputs=[Out("MODEL")], display_name="Apply IPAdapter from Encoded")
def IPAdapterApplyEncoded(
    ipadapter: Any = Socket("IPADAPTER"),
    embeds: Any = Socket("IP_ADAPTER_EMBEDS"),
    model: Any = Socket("MODEL"),
    weight: float = WEIGHT,
    weight_type: str = Combo(WEIGHT_TYPES),
    start_at: float = PERCENT_START,
    end_at: float = PERCENT_END,
    attn_mask: Any = Socket("MASK", optional=True),
) -> tuple:
    """Apply an encoded image prompt (see IPAdapterEncoder) to the model."""
    return (_apply(model, ipadapter, embeds, weight, weight_type, start_at, end_at, attn_mask),)
