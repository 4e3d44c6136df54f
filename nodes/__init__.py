"""Loom's built-in node library, one module per family."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

BUILTIN_MODULES = (
    "nodes.loaders",
    "nodes.conditioning",
    "nodes.sampling",
    "nodes.custom_sampling",
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
    "nodes.conditioning_models",
    "nodes.lora",
    "nodes.controlnet",
    "nodes.gligen",
    "nodes.clip_vision",
    "nodes.ip_adapter",
    "nodes.unclip",
    "nodes.style_models",
    "nodes.preprocess",
    "nodes.upscale",
    "nodes.model_merging",
    "nodes.model_patches",
    "nodes.dit",
    "nodes.pending_loaders",
    "nodes.rebatch",
    "nodes.hooks",
)


def register_builtin(registry: Any) -> None:
    """Add every built-in node module to `registry` (an engine.registry.NodeRegistry)."""
    for name in BUILTIN_MODULES:
        registry.add_module(importlib.import_module(name))


_pack_attributes: list[Callable[[str], Any]] = []


def bind_pack_attributes(lookup: Callable[[str], Any] | None) -> None:
    """Node packs import this package as ComfyUI's `nodes` module; compat.install binds what they read from it
    beyond MAX_RESOLUTION (NODE_CLASS_MAPPINGS, node classes by name), and None unbinds it."""
    _pack_attributes[:] = [lookup] if lookup is not None else []


def __getattr__(name: str) -> Any:
    """What node packs expect of the host's `nodes` module (see `bind_pack_attributes`)."""
    if name == "MAX_RESOLUTION":
        from nodes.shared import MAX_RESOLUTION

        return MAX_RESOLUTION
    if not _pack_attributes:
        raise AttributeError(f"module 'nodes' has no attribute {name!r}")
    return _pack_attributes[0](name)
