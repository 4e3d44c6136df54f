"""Native nodes: a typed function declares its inputs with defaults; `@node` turns it into a node."""

from __future__ import annotations

from typing import Any

from engine.context import NodeContext
from engine.native import Float, Int, Out, Socket, String, node


@node(category="example", outputs=[Out("STRING", "text")])
def ExampleRepeatText(
    ctx: NodeContext,
    text: str = String("hello", multiline=True, tooltip="the text to repeat"),
    times: int = Int(2, min=1, max=100, tooltip="how many copies"),
    separator: str = String(" "),
) -> str:
    """Repeat a text, reporting one progress step per copy."""
    parts = []
    for i in range(times):
        parts.append(text)
        ctx.progress(i + 1, times)  # also stops here when the job is interrupted
    return separator.join(parts)


@node(category="example", outputs=[Out("IMAGE", "image")])
def ExampleBrightness(
    ctx: NodeContext,
    image: Any = Socket("IMAGE"),
    factor: float = Float(1.2, min=0.0, max=4.0, step=0.05),
) -> Any:
    """Scale an image's brightness. IMAGE is a float tensor [batch, height, width, channels] in 0..1; tensor
    methods need no `import torch` here, which keeps Loom's start-up free of it."""
    out = image.clone()
    for i in range(image.shape[0]):
        out[i] = (image[i] * factor).clamp(0.0, 1.0)
        ctx.progress(i + 1, image.shape[0])
    return out
