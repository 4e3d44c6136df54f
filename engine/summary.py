"""Short, JSON-friendly summaries of values for error reports: tensors as shape and dtype, long things cut."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_TEXT = 200


def summarise(value: Any, depth: int = 0) -> Any:
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        try:
            dims = list(shape)
        except TypeError:
            dims = shape
        return f"{type(value).__name__}(shape={dims}, dtype={dtype})"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "..."
    if depth < 2 and isinstance(value, Mapping):
        items = list(value.items())
        out = {str(k): summarise(v, depth + 1) for k, v in items[:20]}
        if len(items) > 20:
            out["..."] = f"{len(items) - 20} more"
        return out
    if depth < 2 and isinstance(value, list | tuple):
        head = [summarise(v, depth + 1) for v in value[:10]]
        return [*head, f"... {len(value) - 10} more"] if len(value) > 10 else head
    text = repr(value)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "..."
