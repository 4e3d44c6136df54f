"""unCLIP: load an SD 2.1 unCLIP checkpoint with its CLIP vision encoder (unCLIPCheckpointLoader), and condition
on images through the model's image-embedding class label (unCLIPConditioning)."""

from __future__ import annotations

from typing import Any

from engine.context import NodeContext
from engine.native import Combo, Float, Out, Socket, node
from nodes.shared import embedding_dirs, file_input, model_file, model_files, model_manager, naming_input


@node(
    category="loaders",
    outputs=[Out("MODEL"), Out("CLIP"), Out("VAE"), Out("CLIP_VISION")],
    display_name="unCLIPCheckpointLoader",
    fingerprint=file_input("checkpoints", "ckpt_name"),
)
def unCLIPCheckpointLoader(ckpt_name: str = Combo(model_files("checkpoints")), *, ctx: NodeContext) -> tuple:
    """Load an SD 2.1 unCLIP checkpoint (sd21-unclip-h / -l): the model, its text encoder and VAE, and the CLIP
    vision encoder whose image embeddings it takes."""
    from diffusion.loader import load_unclip_checkpoint

    path = model_file(ctx.env, "checkpoints", ckpt_name, "ckpt_name")
    with naming_input("ckpt_name"):
        checkpoint, vision = load_unclip_checkpoint(path, model_manager(ctx.env), embedding_dirs(ctx.env))
    return checkpoint.model, checkpoint.clip, checkpoint.vae, vision


@node(category="conditioning", outputs=[Out("CONDITIONING")], display_name="unCLIPConditioning")
def unCLIPConditioning(
    conditioning: Any = Socket("CONDITIONING"),
    clip_vision_output: Any = Socket("CLIP_VISION_OUTPUT"),
    strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01),
    noise_augmentation: float = Float(0.0, min=0.0, max=1.0, step=0.01),
) -> tuple:
    """Prompt an unCLIP model with the encoded images: `noise_augmentation` (0..1) noises their embedding first,
    leaving the model more freedom; the noise comes from the sampler's seed. Applied again, the images stack
    (summed into one label)."""
    from diffusion.unclip import UnclipImage

    if strength == 0:
        return (conditioning,)
    image = UnclipImage(clip_vision_output, strength, noise_augmentation)
    return ([[t, {**o, "unclip_conditioning": [*o.get("unclip_conditioning", ()), image]}] for t, o in conditioning],)
