"""The Loom services the compatibility modules map to, bound once at start-up.

The ecosystem's host modules (`folder_paths`, `comfy.model_management`, `server.PromptServer.instance`) are
process-wide singletons that packs reach by import, not through an argument, so the shims need one process-wide
binding too. This module holds it; nothing else in Loom reads it.
"""

from __future__ import annotations

import dis
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from engine.environment import NodeEnvironment
from engine.folders import Folders
from engine.registry import NodeRegistry

UNSUPPORTED = "a ComfyUI internal outside its compatibility layer"
_IMPORT_FROM = dis.opmap["IMPORT_FROM"]


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
    interrupt: Callable[[], object] | None = None
    node_classes: Any = None


_bound: list[Host] = []

HOST_ROOT = "comfyui-compat"


def host_root(folders: Folders) -> Path:
    """Where packs see "the host's folder" (`dirname(folder_paths.__file__)`): inside the user folder."""
    return folders.user / HOST_ROOT


def redirect_legacy_web(folders: Folders) -> list[Path]:
    """Older packs copy their scripts into `<their folder>/../../web/extensions` (the host's folder, seen from
    custom_nodes/<pack>). Next to each custom_nodes folder that has no such folder yet, make it a link to the
    user folder's one, so those copies never land in Loom's source tree; returns the links made."""
    target = host_root(folders) / "web" / "extensions"
    target.mkdir(parents=True, exist_ok=True)
    made = []
    for root in folders.custom_nodes:
        link = Path(root).parent / "web" / "extensions"
        if link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target, target_is_directory=True)
        made.append(link)
    return made


def legacy_extensions(folders: Folders) -> dict[str, Path]:
    """The front-end folders older packs copied into `<host folder>/web/extensions/<name>`, by name."""
    root = host_root(folders) / "web" / "extensions"
    return {p.name: p for p in sorted(root.iterdir()) if p.is_dir()} if root.is_dir() else {}


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
    """The one error for an attribute the shims lack, naming the module and the attribute.

    It is an AttributeError, so `hasattr` probes answer False; but under `from module import name` Python would
    replace an AttributeError by its own vaguer "cannot import name", so there it is an ImportError instead.
    """
    if name.startswith("__"):
        raise AttributeError(name)
    message = f"Loom does not provide {module}.{name} ({UNSUPPORTED})"
    if _importing_from(sys._getframe(1)):
        raise ImportError(message, name=module)
    raise AttributeError(message)


def _importing_from(frame: FrameType | None) -> bool:
    """True when a frame up the stack (past the `__getattr__` that called refuse) is running `from m import x`."""
    for _ in range(3):
        if frame is None:
            return False
        if frame.f_code.co_code[frame.f_lasti] == _IMPORT_FROM:
            return True
        frame = frame.f_back
    return False
