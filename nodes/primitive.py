"""Primitive nodes: one widget whose value feeds any input of its type."""

from __future__ import annotations

import sys

from engine.native import Boolean, Float, Int, String, node


@node(category="utils/primitive", outputs=["INT"])
def PrimitiveInt(value: int = Int(0, min=-sys.maxsize, max=sys.maxsize, control_after_generate=True)) -> int:
    return value


@node(category="utils/primitive", outputs=["FLOAT"])
def PrimitiveFloat(value: float = Float(0.0, min=-sys.maxsize, max=sys.maxsize)) -> float:
    return value


@node(category="utils/primitive", outputs=["STRING"])
def PrimitiveString(value: str = String("")) -> str:
    return value


@node(category="utils/primitive", outputs=["STRING"])
def PrimitiveStringMultiline(value: str = String("", multiline=True)) -> str:
    return value


@node(category="utils/primitive", outputs=["BOOLEAN"])
def PrimitiveBoolean(value: bool = Boolean(False)) -> bool:
    return value
