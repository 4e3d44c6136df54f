"""CLIP vision: load an image encoder (CLIPVisionLoader) and encode images with it (CLIPVisionEncode).

The encodings feed image prompts: IP-Adapter, unCLIP conditioning and style models.
"""

from __future__ import annotations

from typing import Any

from engine.context import NodeContext
from engine.native import Combo, Out, Socket, node
from nodes.shared import file_input, model_file, model_files, model_manager, naming_input


@node(
    category="loaders",
    outputs=[Out("CLIP_VISION")],
    display_name="Load CLIP Vision",
    fingerprint=file_input("clip_vision", "clip_name"),
)
def CLIPVisionLoader(clip_name: str = Combo(model_files("clip_vision")), *, ctx: NodeContext) -> tuple:
    """Load a CLIP vision encoder (ViT-L/14, ViT-H/14, ViT-bigG/14, ...) from one file in models/clip_vision,
    in the transformers (`vision_model.*`) or OpenCLIP (`visual.*`) layout, or a SigLIP encoder (FLUX Redux's
    sigclip_vision_patch14_384)."""
    from diffusion.clip_vision import load_clip_vision

    path = model_file(ctx.env, "clip_vision", clip_name, "clip_name")
    with naming_input("clip_name"):
        return (load_clip_vision(path, model_manager(ctx.env)),)


@node(category="conditioning", outputs=[Out("CLIP_VISION_OUTPUT")], display_name="CLIP Vision Encode")
def CLIPVisionEncode(
    clip_vision: Any = Socket("CLIP_VISION"),
    image: Any = Socket("IMAGE"),
    crop: str = Combo(["center", "none"]),
) -> tuple:
    """Encode images with a CLIP vision model: "center" resizes the short side and cuts out the centre, "none"
    squashes the whole image to the encoder's square input (SigLIP's own preprocessing)."""
    return (clip_vision.encode(image, crop),)
