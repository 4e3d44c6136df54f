"""`comfy.k_diffusion.utils` for node packs: the tensor helpers (shared with `sampling`); the rest by name."""

from typing import Any

from comfy.k_diffusion.sampling import append_dims, append_zero, to_d

from compat.surface import complete, resolve

__all__ = ["append_dims", "append_zero", "to_d"]

complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
