"""Loom's built-in node library, one module per family."""

from __future__ import annotations

import importlib
from typing import Any

BUILTIN_MODULES = (
    "nodes.latent",
    "nodes.image",
    "nodes.primitive",
)


def register_builtin(registry: Any) -> None:
    """Add every built-in node module to `registry` (an engine.registry.NodeRegistry)."""
    for name in BUILTIN_MODULES:
        registry.add_module(importlib.import_module(name))
