"""GLIGEN: GLIGENLoader reads a GLIGEN file (models/gligen), GLIGENTextBoxApply places a phrase in a box of a
conditioning; the sampler adds the gated self-attention layers to the UNet's transformer blocks for the rows of
that conditioning (diffusion.gligen), leaving the loaded model as it is."""

from __future__ import annotations

from typing import Any

from engine.context import NodeContext
from engine.native import Combo, Int, Out, Socket, String, node
from nodes.shared import MAX_RESOLUTION, file_input, model_file, model_files


@node(category="loaders", outputs=[Out("GLIGEN")], fingerprint=file_input("gligen", "gligen_name"))
def GLIGENLoader(gligen_name: str = Combo(model_files("gligen")), *, ctx: NodeContext) -> tuple:
    """A GLIGEN model: the position net and the gated self-attention layers of each transformer block."""
    from diffusion.gligen import GligenError, load_gligen

    path = model_file(ctx.env, "gligen", gligen_name, "gligen_name")
    try:
        return (load_gligen(path),)
    except (GligenError, ValueError) as exc:
        raise ValueError(f"gligen_name: {exc}") from exc


BOX = {"min": 8, "max": MAX_RESOLUTION, "step": 8}
OFFSET = {"min": 0, "max": MAX_RESOLUTION, "step": 8}


@node(category="conditioning/gligen", outputs=[Out("CONDITIONING")])
def GLIGENTextBoxApply(
    conditioning_to: Any = Socket("CONDITIONING"),
    clip: Any = Socket("CLIP"),
    gligen_textbox_model: Any = Socket("GLIGEN"),
    text: str = String(multiline=True, dynamic_prompts=True),
    width: int = Int(64, **BOX),
    height: int = Int(64, **BOX),
    x: int = Int(0, **OFFSET),
    y: int = Int(0, **OFFSET),
) -> tuple:
    """Ground `text` in the box (x, y, width, height, in pixels) of every conditioning pair; boxes added earlier
    with the same GLIGEN model are kept (up to 30 per conditioning)."""
    from diffusion.gligen import Gligen, GligenBox, GligenBoxes

    if not isinstance(gligen_textbox_model, Gligen):
        raise ValueError("gligen_textbox_model: expected a GLIGEN model from GLIGENLoader")
    if clip is None or not hasattr(clip, "phrase_embedding"):
        raise ValueError("clip: expected a CLIP text encoder (SD 1.x for the published GLIGEN models)")
    embedding = clip.phrase_embedding(text)
    if embedding.shape[-1] != gligen_textbox_model.phrase_dim:
        raise ValueError(
            f"clip: its phrase embeddings are {embedding.shape[-1]} wide; this GLIGEN model takes "
            f"{gligen_textbox_model.phrase_dim} (pair it with the text encoder it was trained with)"
        )
    box = GligenBox(embedding, height // 8, width // 8, y // 8, x // 8)
    out = []
    for tensor, extras in conditioning_to:
        before = extras.get("gligen")
        keep = isinstance(before, GligenBoxes) and before.model is gligen_textbox_model
        boxes = before.plus(box) if keep else GligenBoxes(gligen_textbox_model, (box,))
        out.append([tensor, {**extras, "gligen": boxes}])
    return (out,)
