"""`comfy.comfy_types.node_typing`: socket type names (`IO`) and typing helpers for protocol-style node classes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import Any, ClassVar, TypedDict

from compat.host import refuse


class IO(StrEnum):
    """Socket type names; members are plain strings, so `RETURN_TYPES = (IO.IMAGE,)` is `("IMAGE",)`."""

    STRING = "STRING"
    IMAGE = "IMAGE"
    MASK = "MASK"
    LATENT = "LATENT"
    BOOLEAN = "BOOLEAN"
    INT = "INT"
    FLOAT = "FLOAT"
    COMBO = "COMBO"
    CONDITIONING = "CONDITIONING"
    SAMPLER = "SAMPLER"
    SIGMAS = "SIGMAS"
    GUIDER = "GUIDER"
    NOISE = "NOISE"
    CLIP = "CLIP"
    CONTROL_NET = "CONTROL_NET"
    VAE = "VAE"
    MODEL = "MODEL"
    CLIP_VISION = "CLIP_VISION"
    CLIP_VISION_OUTPUT = "CLIP_VISION_OUTPUT"
    STYLE_MODEL = "STYLE_MODEL"
    GLIGEN = "GLIGEN"
    UPSCALE_MODEL = "UPSCALE_MODEL"
    AUDIO = "AUDIO"
    VIDEO = "VIDEO"
    WEBCAM = "WEBCAM"
    POINT = "POINT"
    BBOX = "BBOX"
    SEGS = "SEGS"
    ANY = "*"
    NUMBER = "FLOAT,INT"
    PRIMITIVE = "STRING,FLOAT,INT,BOOLEAN"


class InputTypeDict(TypedDict, total=False):
    """What `INPUT_TYPES()` returns."""

    required: dict[str, tuple[Any, ...]]
    optional: dict[str, tuple[Any, ...]]
    hidden: dict[str, Any]


class FileLocator(TypedDict):
    filename: str
    subfolder: str
    type: str


class ComfyNodeABC(ABC):
    """A base for protocol-style node classes, listing the attributes Loom reads from them."""

    DESCRIPTION: ClassVar[str] = ""
    CATEGORY: ClassVar[str] = ""
    RETURN_TYPES: ClassVar[tuple[str, ...]] = ()
    RETURN_NAMES: ClassVar[tuple[str, ...] | None] = None
    OUTPUT_TOOLTIPS: ClassVar[tuple[str, ...] | None] = None
    OUTPUT_IS_LIST: ClassVar[tuple[bool, ...] | None] = None
    INPUT_IS_LIST: ClassVar[bool] = False
    OUTPUT_NODE: ClassVar[bool] = False
    NOT_IDEMPOTENT: ClassVar[bool] = False
    DEPRECATED: ClassVar[bool] = False
    EXPERIMENTAL: ClassVar[bool] = False
    FUNCTION: ClassVar[str]

    @classmethod
    @abstractmethod
    def INPUT_TYPES(cls) -> InputTypeDict: ...


class CheckLazyMixin:
    """Default `check_lazy_status`: ask for every lazy input not yet evaluated (they arrive as None)."""

    def check_lazy_status(self, **kwargs: Any) -> list[str]:
        declared = type(self).INPUT_TYPES()  # type: ignore[attr-defined]
        lazy = [
            name
            for section in ("required", "optional")
            for name, entry in (declared.get(section) or {}).items()
            if isinstance(entry, tuple | list)
            and len(entry) > 1
            and isinstance(entry[1], dict)
            and entry[1].get("lazy")
        ]
        return [name for name in lazy if kwargs.get(name) is None]


def __getattr__(name: str) -> Any:
    refuse("comfy.comfy_types.node_typing", name)
