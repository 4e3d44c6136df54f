"""`comfy` for node packs: only `comfy.utils`, `comfy.model_management` and `comfy.comfy_types` exist.

Anything else under `comfy` (`comfy.sd`, `comfy.samplers`, ...) is ComfyUI's own machinery; importing it fails
with an error that names the module, so a pack that needs it is reported clearly instead of half working.
"""

from typing import Any

from compat.host import refuse


def __getattr__(name: str) -> Any:
    refuse("comfy", name)
