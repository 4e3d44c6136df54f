"""Primitive nodes: one widget whose value feeds any input of its type."""

from __future__ import annotations

import sys

from engine.native import Boolean, Float, Int, String, node


@node(category="utils/primitive", outputs=["INT"], display_name="Int")
def PrimitiveInt(value: int = Int(None, min=-sys.maxsize, max=sys.maxsize, control_after_generate=True)) -> int:
    return value


@node(category="utils/primitive", outputs=["FLOAT"], display_name="Float")
def PrimitiveFloat(value: float = Float(None, min=-sys.maxsize, max=sys.maxsize)) -> float:
    return value


@node(category="utils/primitive", outputs=["STRING"], display_name="String")
def PrimitiveString(value: str = String()) -> str:
    return value


@node(category="utils/primitive", outputs=["STRING"], display_name="String (Multiline)")
def PrimitiveStringMultiline(value: str = String(multiline=True)) -> str:
    return value


@node(category="utils/primitive", outputs=["BOOLEAN"], display_name="Boolean")
def PrimitiveBoolean(value: bool = Boolean(None)) -> bool:
    return value
