"""`comfy_extras` for node packs: the reference's extra node modules that packs import classes and helpers from."""

from typing import Any

from compat.host import refuse


def __getattr__(name: str) -> Any:
    refuse("comfy_extras", name)
