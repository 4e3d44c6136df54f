"""`comfy.ldm` for node packs: the reference's model code, by name only (compat.surface), except the attention
functions in `comfy.ldm.modules.attention`."""

from typing import Any

from compat.surface import complete, resolve

complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
