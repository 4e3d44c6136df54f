"""Style models: load one (StyleModelLoader: T2I-Adapter style or FLUX Redux files) and append the tokens it makes
of a CLIP vision encoding to a text conditioning (StyleModelApply)."""

from __future__ import annotations

from typing import Any

from engine.context import NodeContext
from engine.native import Combo, Float, Out, Socket, node
from nodes.shared import file_input, model_file, model_files, naming_input

STRENGTH_TYPES = ["multiply", "attn_bias"]


@node(
    category="loaders",
    outputs=[Out("STYLE_MODEL")],
    display_name="Load Style Model",
    fingerprint=file_input("style_models", "style_model_name"),
)
def StyleModelLoader(style_model_name: str = Combo(model_files("style_models")), *, ctx: NodeContext) -> Any:
    """Load a style model from models/style_models: a T2I-Adapter style adapter (SD 1.x, with the ViT-L/14
    encoder) or FLUX Redux (with the SigLIP encoder)."""
    from diffusion.style_models import load_style_model

    path = model_file(ctx.env, "style_models", style_model_name, "style_model_name")
    with naming_input("style_model_name"):
        return load_style_model(path)


@node(category="conditioning/style_model", outputs=[Out("CONDITIONING")], display_name="Apply Style Model")
def StyleModelApply(
    conditioning: Any = Socket("CONDITIONING"),
    style_model: Any = Socket("STYLE_MODEL"),
    clip_vision_output: Any = Socket("CLIP_VISION_OUTPUT"),
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.001),
    strength_type: str = Combo(STRENGTH_TYPES),
) -> Any:
    """Append the style tokens of the encoded images to the prompt: "multiply" scales the tokens by `strength`,
    "attn_bias" makes the image attend to them `strength` times as much (U-Net and FLUX models; not SD3)."""
    from diffusion.style_models import apply_style

    return apply_style(conditioning, style_model.tokens(clip_vision_output), strength, strength_type)
