"""`comfy_api.latest.ui`: what a V3 node shows on the canvas, returned as `io.NodeOutput(..., ui=...)`.

Images are written through Loom's own image saving (nodes.files.save_images) into the temp or output folder of
the running job; audio, video and 3D previews have no counterpart in Loom and fail by name when used.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from compat import placeholder
from engine.context import NodeContext, current_context


class _UIOutput:
    def as_dict(self) -> dict[str, Any]:
        raise NotImplementedError


class SavedResult:
    """One written file as clients address it: name, subfolder and folder type."""

    def __init__(self, filename: str, subfolder: str, type: str) -> None:
        self.filename = filename
        self.subfolder = subfolder
        self.type = getattr(type, "value", type)

    def as_dict(self) -> dict[str, str]:
        return {"filename": self.filename, "subfolder": self.subfolder, "type": self.type}


class SavedImages(_UIOutput):
    def __init__(self, results: list[SavedResult], is_animated: bool = False) -> None:
        self.results = list(results)
        self.is_animated = is_animated

    def as_dict(self) -> dict[str, Any]:
        return {"images": [r.as_dict() for r in self.results], "animated": (self.is_animated,)}


def _context(what: str) -> NodeContext:
    ctx = current_context()
    if ctx is None:
        raise RuntimeError(f"{what} saves images for a running node; it was used outside one")
    return ctx


class ImageSaveHelper:
    """Writes IMAGE batches as PNGs for a node, with the workflow embedded (from `cls.hidden` when given)."""

    @staticmethod
    def save_images(
        images: Any, filename_prefix: str, folder_type: Any, cls: Any = None, compress_level: int = 4
    ) -> list[SavedResult]:
        from nodes.files import save_images

        ctx = _context("ui.ImageSaveHelper")
        hidden = getattr(cls, "hidden", None)
        prompt = getattr(hidden, "prompt", None) or ctx.prompt
        extra = getattr(hidden, "extra_pnginfo", None) or ctx.extra_pnginfo
        kind = getattr(folder_type, "value", folder_type)
        saved = save_images(ctx, images, filename_prefix, kind, prompt, extra, compress_level)["ui"]["images"]
        return [SavedResult(**entry) for entry in saved]

    @staticmethod
    def get_save_images_ui(images: Any, filename_prefix: str, cls: Any = None, compress_level: int = 4) -> SavedImages:
        return SavedImages(ImageSaveHelper.save_images(images, filename_prefix, "output", cls, compress_level))


def _temp_prefix() -> str:
    return "Loom_temp_" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))


class PreviewImage(_UIOutput):
    """Shows an IMAGE batch without keeping it (written to the temp folder)."""

    def __init__(self, image: Any, animated: bool = False, cls: Any = None, **kwargs: Any) -> None:
        self.values = ImageSaveHelper.save_images(image, _temp_prefix(), "temp", cls, compress_level=1)
        self.animated = animated

    def as_dict(self) -> dict[str, Any]:
        return {"images": [v.as_dict() for v in self.values], "animated": (self.animated,)}


class PreviewMask(PreviewImage):
    """Shows a MASK batch as grey images."""

    def __init__(self, mask: Any, animated: bool = False, cls: Any = None, **kwargs: Any) -> None:
        pixels = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).movedim(1, -1).expand(-1, -1, -1, 3)
        super().__init__(pixels, animated, cls)


class PreviewText(_UIOutput):
    def __init__(self, value: str, **kwargs: Any) -> None:
        self.value = value

    def as_dict(self) -> dict[str, Any]:
        return {"text": (self.value,)}


placeholder.fill(
    globals(),
    "comfy_api.latest.ui",
    classes=("PreviewAudio", "PreviewVideo", "PreviewUI3D", "AudioSaveHelper", "VideoSaveHelper"),
)


def __getattr__(name: str) -> Any:
    from compat.host import refuse

    refuse("comfy_api.latest.ui", name)
