"""Preprocessors that need no weights: hint images for ControlNets."""

from __future__ import annotations

from typing import Any

from engine.native import Float, Out, Socket, node


@node(category="image/preprocessors", outputs=[Out("IMAGE")])
def Canny(
    image: Any = Socket("IMAGE"),
    low_threshold: float = Float(0.4, min=0.01, max=0.99, step=0.01),
    high_threshold: float = Float(0.8, min=0.01, max=0.99, step=0.01),
) -> tuple:
    """White edges on black, for canny ControlNets; thresholds apply to the gradient strength of the grey image."""
    from diffusion.canny import canny

    edges = canny(image, low_threshold, high_threshold)
    return (edges[..., None].repeat(1, 1, 1, 3),)
