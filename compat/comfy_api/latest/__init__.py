"""`comfy_api.latest` for node packs: the V3 node API (`io`, `ui`), extensions and the progress API.

A V3 pack without NODE_CLASS_MAPPINGS defines `comfy_entrypoint()` returning a `ComfyExtension`, whose
`get_node_list()` lists its `io.ComfyNode` classes (engine.packs calls both, awaiting them when async).
`ComfyAPI().execution.set_progress(...)` (async) and `ComfyAPISync` (plain calls) report a node's progress and
preview to the client of its job, like the engine's own progress events.
"""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io, ui

from compat import placeholder
from compat.host import refuse
from compat.previews import MAX_PREVIEW_SIZE, encode_preview
from engine.context import current_context
from engine.events import NodeProgress

__all__ = ["ComfyAPI", "ComfyAPISync", "ComfyExtension", "Input", "InputImpl", "Types", "io", "ui"]


class ComfyExtension:
    """A pack's entry point object: `on_load()` runs once at start-up, `get_node_list()` names its nodes."""

    async def on_load(self) -> None:
        return None

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        raise NotImplementedError(f"{type(self).__name__} must define get_node_list()")


def set_progress(
    value: float,
    max_value: float,
    node_id: str | None = None,
    preview_image: Any = None,
    ignore_size_limit: bool = False,
) -> None:
    """Send the running node's (or `node_id`'s) progress, with an optional preview, to its job's client."""
    ctx = current_context()
    if ctx is None:
        raise RuntimeError("execution.set_progress reports a running node's progress; it was called outside one")
    preview = encode_preview(preview_image, None if ignore_size_limit else MAX_PREVIEW_SIZE)
    ctx.emit(NodeProgress(ctx.prompt_id, str(node_id or ctx.node_id), value, max_value, preview))


class _ExecutionSync:
    set_progress = staticmethod(set_progress)


class _Execution:
    async def set_progress(self, *args: Any, **kwargs: Any) -> None:
        """The same report from async code (it never waits on anything)."""
        set_progress(*args, **kwargs)


class ComfyAPI:
    """The async host API a node may call while it runs."""

    def __init__(self) -> None:
        self.execution = _Execution()


class ComfyAPISync:
    """The same API with plain (blocking) calls, for sync nodes."""

    def __init__(self) -> None:
        self.execution = _ExecutionSync()


class Input:
    """Input value types; Loom has no video or 3D inputs, so these exist by name only."""

    Image = Any
    Mask = Any
    Latent = Any
    Video = placeholder.klass("comfy_api.latest.Input.Video")
    Audio = Any


class InputImpl:
    VideoFromFile = placeholder.klass("comfy_api.latest.InputImpl.VideoFromFile")
    VideoFromComponents = placeholder.klass("comfy_api.latest.InputImpl.VideoFromComponents")


class Types:
    VideoComponents = placeholder.klass("comfy_api.latest.Types.VideoComponents")
    VideoContainer = placeholder.klass("comfy_api.latest.Types.VideoContainer")
    VideoCodec = placeholder.klass("comfy_api.latest.Types.VideoCodec")


def __getattr__(name: str) -> Any:
    refuse("comfy_api.latest", name)
