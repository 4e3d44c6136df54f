"""`comfy.ldm.modules` for node packs: see comfy.ldm."""

from typing import Any

from compat.surface import complete, resolve

complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
