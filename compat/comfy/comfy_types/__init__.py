"""`comfy.comfy_types` for node packs: re-exports `node_typing` (IO, ComfyNodeABC, InputTypeDict, ...)."""

from typing import Any

from compat.host import refuse

from .node_typing import IO, CheckLazyMixin, ComfyNodeABC, FileLocator, InputTypeDict

__all__ = ["IO", "CheckLazyMixin", "ComfyNodeABC", "FileLocator", "InputTypeDict"]


def __getattr__(name: str) -> Any:
    refuse("comfy.comfy_types", name)
