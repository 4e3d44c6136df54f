"""The Loom services the compatibility modules map to, bound once at start-up.

The ecosystem's host modules (`folder_paths`, `comfy.model_management`, `server.PromptServer.instance`) are
process-wide singletons that packs reach by import, not through an argument, so the shims need one process-wide
binding too. This module holds it; nothing else in Loom reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from engine.environment import NodeEnvironment
from engine.folders import Folders
from engine.registry import NodeRegistry

UNSUPPORTED = "packs that reach into ComfyUI internals are not supported"


@dataclass
class Host:
    """What the shims answer from: the folders, the node registry, the node environment and the server's hooks.

    `extensions` holds the file extensions packs declared for folders they added through
    `folder_paths.folder_names_and_paths`; `interrupt` stops the running job (the server binds it);
    `node_classes` caches `nodes.NODE_CLASS_MAPPINGS`.
    """

    folders: Folders
    registry: NodeRegistry | None = None
    env: NodeEnvironment | None = None
    cpu: bool = False
    extensions: dict[str, set[str]] = field(default_factory=dict)
    interrupt: Callable[[], None] | None = None
    node_classes: Any = None


_bound: list[Host] = []


def bind(host: Host) -> Host:
    _bound[:] = [host]
    return host


def unbind() -> None:
    _bound.clear()


def current() -> Host:
    if not _bound:
        raise RuntimeError("Loom's compatibility modules are used before Loom bound its folders (compat.install)")
    return _bound[0]


def bound() -> Host | None:
    return _bound[0] if _bound else None


def refuse(module: str, name: str) -> NoReturn:
    """The one error for an attribute the shims lack, naming the module and the attribute."""
    if name.startswith("__"):
        raise AttributeError(name)
    raise AttributeError(f"Loom's compatibility layer does not provide {module}.{name} ({UNSUPPORTED})")
