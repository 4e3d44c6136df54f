"""Loom's built-in node library, one module per family."""

from __future__ import annotations

import importlib
from typing import Any

BUILTIN_MODULES = (
    "nodes.loaders",
    "nodes.conditioning",
    "nodes.sampling",
    "nodes.vae",
    "nodes.latent",
    "nodes.image",
    "nodes.image_transform",
    "nodes.image_filters",
    "nodes.image_save",
    "nodes.mask",
    "nodes.latent_batch",
    "nodes.strings",
    "nodes.primitive",
    "nodes.conditioning_ops",
    "nodes.lora",
    "nodes.controlnet",
    "nodes.preprocess",
    "nodes.upscale",
    "nodes.dit",
    "nodes.pending_loaders",
    "nodes.rebatch",
)


def register_builtin(registry: Any) -> None:
    """Add every built-in node module to `registry` (an engine.registry.NodeRegistry)."""
    for name in BUILTIN_MODULES:
        registry.add_module(importlib.import_module(name))


def __getattr__(name: str) -> Any:
    """What node packs expect of the host's `nodes` module: MAX_RESOLUTION, NODE_CLASS_MAPPINGS (compat.nodes)."""
    if name == "MAX_RESOLUTION":
        from nodes.latent import MAX_RESOLUTION

        return MAX_RESOLUTION
    from compat.nodes import host_attribute

    return host_attribute(name)
