"""Conditioning helpers seen in shared workflows: combine, concat, average, areas, masks, zero-out, timestep ranges.

CONDITIONING is a list of `[tensor, dict]` pairs. The dict keys are the ecosystem's: `area` as (h, w, y, x) in
latent units (or `("percentage", h, w, y, x)` as fractions), `strength`, `set_area_to_bounds`, `mask`,
`mask_strength`, `start_percent`, `end_percent`, `pooled_output`. Nodes never mutate their inputs: each returns new
pairs with copied dicts, since the same conditioning may feed other nodes and sits in the cache.
"""

from __future__ import annotations

from typing import Any

from engine.context import NodeContext
from engine.native import Combo, Float, Int, Out, Socket, node
from nodes.shared import MAX_RESOLUTION, with_values

COND = Socket("CONDITIONING")
CATEGORY = "conditioning"


@node(category=CATEGORY, outputs=[Out("CONDITIONING")], display_name="Conditioning (Combine)")
def ConditioningCombine(conditioning_1: Any = COND, conditioning_2: Any = COND) -> tuple:
    """Both conditionings side by side: the sampler predicts with each and blends the results by area and strength."""
    return (list(conditioning_1) + list(conditioning_2),)


@node(category=CATEGORY, outputs=[Out("CONDITIONING")], display_name="Conditioning (Concat)")
def ConditioningConcat(conditioning_to: Any = COND, conditioning_from: Any = COND, *, ctx: NodeContext) -> tuple:
    """Append the first entry of `conditioning_from` to each entry's tokens (one longer prompt, not a blend)."""
    import torch

    if len(conditioning_from) > 1:
        ctx.warn("ConditioningConcat: conditioning_from has several entries; only the first is used")
    source = conditioning_from[0][0]
    return ([[torch.cat((tensor, source.to(tensor)), dim=1), dict(extras)] for tensor, extras in conditioning_to],)


@node(category=CATEGORY, outputs=[Out("CONDITIONING")])
def ConditioningAverage(
    conditioning_to: Any = COND,
    conditioning_from: Any = COND,
    conditioning_to_strength: float = Float(1.0, min=0.0, max=1.0, step=0.01),
    *,
    ctx: NodeContext,
) -> tuple:
    """Weighted average `to * s + from * (1 - s)`, token-wise (shorter is zero-padded) and of the pooled outputs."""
    import torch

    if len(conditioning_from) > 1:
        ctx.warn("ConditioningAverage: conditioning_from has several entries; only the first is used")
    source, source_extras = conditioning_from[0]
    source_pooled = source_extras.get("pooled_output")
    s = conditioning_to_strength
    out = []
    for tensor, extras in conditioning_to:
        src = source.to(tensor)[:, : tensor.shape[1]]
        if src.shape[1] < tensor.shape[1]:
            pad = torch.zeros(src.shape[0], tensor.shape[1] - src.shape[1], src.shape[2], dtype=src.dtype)
            src = torch.cat((src, pad.to(src.device)), dim=1)
        new_extras = dict(extras)
        pooled = extras.get("pooled_output")
        if pooled is not None and source_pooled is not None:
            new_extras["pooled_output"] = pooled * s + source_pooled.to(pooled) * (1.0 - s)
        elif source_pooled is not None:
            new_extras["pooled_output"] = source_pooled
        out.append([tensor * s + src * (1.0 - s), new_extras])
    return (out,)


@node(category=CATEGORY, outputs=[Out("CONDITIONING")], display_name="Conditioning (Set Area)")
def ConditioningSetArea(
    conditioning: Any = COND,
    width: int = Int(64, min=64, max=MAX_RESOLUTION, step=8),
    height: int = Int(64, min=64, max=MAX_RESOLUTION, step=8),
    x: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
    y: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01),
) -> tuple:
    """Limit the conditioning to a rectangle given in pixels (stored in latent units, 1/8)."""
    area = (height // 8, width // 8, y // 8, x // 8)
    return (with_values(conditioning, area=area, strength=strength, set_area_to_bounds=False),)


@node(category=CATEGORY, outputs=[Out("CONDITIONING")], display_name="Conditioning (Set Area with Percentage)")
def ConditioningSetAreaPercentage(
    conditioning: Any = COND,
    width: float = Float(1.0, min=0.0, max=1.0, step=0.01),
    height: float = Float(1.0, min=0.0, max=1.0, step=0.01),
    x: float = Float(0.0, min=0.0, max=1.0, step=0.01),
    y: float = Float(0.0, min=0.0, max=1.0, step=0.01),
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01),
) -> tuple:
    """Limit the conditioning to a rectangle given as fractions of the image."""
    area = ("percentage", height, width, y, x)
    return (with_values(conditioning, area=area, strength=strength, set_area_to_bounds=False),)


@node(category=CATEGORY, outputs=[Out("CONDITIONING")], display_name="Conditioning (Set Mask)")
def ConditioningSetMask(
    conditioning: Any = COND,
    mask: Any = Socket("MASK"),
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01),
    set_cond_area: str = Combo(["default", "mask bounds"]),
) -> tuple:
    """Weight the conditioning by a mask; "mask bounds" also crops the prediction to the mask's bounding box."""
    if mask.dim() < 3:
        mask = mask.unsqueeze(0)
    return (
        with_values(conditioning, mask=mask, mask_strength=strength, set_area_to_bounds=set_cond_area != "default"),
    )


@node(category="advanced/conditioning", outputs=[Out("CONDITIONING")])
def ConditioningZeroOut(conditioning: Any = COND) -> tuple:
    """All-zero embeddings (and pooled output), for models trained with empty negatives."""
    import torch

    out = []
    for tensor, extras in conditioning:
        new_extras = dict(extras)
        if extras.get("pooled_output") is not None:
            new_extras["pooled_output"] = torch.zeros_like(extras["pooled_output"])
        out.append([torch.zeros_like(tensor), new_extras])
    return (out,)


@node(category="advanced/conditioning", outputs=[Out("CONDITIONING")])
def ConditioningSetTimestepRange(
    conditioning: Any = COND,
    start: float = Float(0.0, min=0.0, max=1.0, step=0.001),
    end: float = Float(1.0, min=0.0, max=1.0, step=0.001),
) -> tuple:
    """Let the conditioning act only from `start` to `end` (fractions of the sampling schedule)."""
    return (with_values(conditioning, start_percent=start, end_percent=end),)
