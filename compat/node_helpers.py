"""`node_helpers` for node packs: conditioning edits and image opening helpers, on Loom's own data shapes
(CONDITIONING is the ecosystem's list of `[tensor, dict]` pairs in Loom too)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from compat.surface import complete, resolve


def conditioning_set_values(conditioning: Any, values: Mapping[str, Any] | None = None, append: bool = False) -> Any:
    """A copy of every pair with `values` set in its dict (appended to lists already there with `append`)."""
    values = values or {}
    out = []
    for tensor, extras in conditioning:
        updated = dict(extras)
        for key, value in values.items():
            if append and key in updated and isinstance(updated[key], list):
                updated[key] = updated[key] + list(value)
            else:
                updated[key] = value
        out.append([tensor, updated])
    return out


def pillow(fn: Callable[..., Any], arg: Any) -> Any:
    """Call a PIL function, retrying once with truncated images allowed (what the reference does)."""
    from PIL import ImageFile

    try:
        return fn(arg)
    except (OSError, UnicodeDecodeError):
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            return fn(arg)
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def hasher() -> Callable[..., Any]:
    """The hash function for file fingerprints (the reference's default, sha256)."""
    return hashlib.sha256


def string_to_torch_dtype(string: str) -> Any:
    import torch

    names = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    return names.get(string)


def image_alpha_fix(destination: Any, source: Any) -> tuple[Any, Any]:
    """Give both images the same channel count (adding an opaque alpha to the one without)."""
    import torch

    if destination.shape[-1] < source.shape[-1]:
        source = source[..., : destination.shape[-1]]
    elif destination.shape[-1] > source.shape[-1]:
        pad = torch.ones_like(source[..., :1])
        source = torch.cat([source, pad.expand(*source.shape[:-1], destination.shape[-1] - source.shape[-1])], -1)
    return destination, source


complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
