"""`comfy.k_diffusion` for node packs: `sampling` (Loom's samplers in k-diffusion's call shape) and names."""

from typing import Any

from compat.surface import complete, resolve

complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
