"""`comfy_api.v0_0_2`: a pinned API version packs import; Loom serves it with the same objects as `latest`."""

from typing import Any

from comfy_api.latest import *  # noqa: F403
from comfy_api.latest import ComfyAPI, ComfyAPISync, ComfyExtension, io, ui  # noqa: F401

from compat.host import refuse


def __getattr__(name: str) -> Any:
    refuse("comfy_api.v0_0_2", name)
