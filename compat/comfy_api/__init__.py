"""`comfy_api` for node packs: the versioned node API (`latest`, and the numbered versions packs pin)."""

from typing import Any

from compat.host import refuse


def __getattr__(name: str) -> Any:
    refuse("comfy_api", name)
