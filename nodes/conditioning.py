"""Text conditioning: CLIPTextEncode turns a prompt into CONDITIONING ([[tensor, {"pooled_output": ...}]])."""

from __future__ import annotations

from typing import Any

from engine.context import NodeContext
from engine.native import Out, Socket, String, node


@node(
    category="conditioning",
    outputs=[Out("CONDITIONING", "CONDITIONING", tooltip="The encoded prompt, for a sampler's positive or negative.")],
    display_name="CLIP Text Encode (Prompt)",
)
def CLIPTextEncode(
    text: str = String("", multiline=True, tooltip="(word:1.2) weights, (word) x1.1, [word] /1.1, embedding:NAME"),
    clip: Any = Socket("CLIP"),
    ctx: NodeContext = None,  # type: ignore[assignment]
) -> list[list[Any]]:
    """Encode a prompt with the checkpoint's text encoder(s); long prompts are encoded in 77-token windows."""
    if clip is None:
        raise ValueError("clip: the checkpoint has no text encoder")
    warn = ctx.warn if ctx is not None else (lambda _m: None)
    encoded = clip.encode(text, warn)
    return [[encoded.cond, {"pooled_output": encoded.pooled}]]
