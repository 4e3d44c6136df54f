"""`comfy_extras` for node packs: the reference's extra node modules, whose node classes are Loom's built-ins where
Loom has them and placeholders otherwise (compat.surface)."""

from typing import Any

from compat.surface import complete, resolve

complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
