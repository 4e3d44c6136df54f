"""`comfy` for node packs: the host's modules packs import, real where Loom has the machinery (samplers' name
lists, checkpoint loading, sampling, devices, progress) and by name only where it does not (compat.surface).
A submodule is also reached as an attribute (`import comfy; comfy.samplers`), as after the reference's start-up.
"""

from typing import Any

from compat.surface import complete, resolve

complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
