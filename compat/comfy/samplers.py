"""`comfy.samplers` for node packs: the sampler and scheduler names (Loom's one list, diffusion.names).

Packs read `comfy.samplers.KSampler.SAMPLERS` / `.SCHEDULERS` for their combos at import, so those are real.
The sampling machinery itself (`KSampler(...)`, `CFGGuider`, `sampler_object`, `calculate_sigmas`, ...) is
ComfyUI's and exists here by name only: using it fails naming it and the calling node (compat.surface).
"""

from __future__ import annotations

from typing import Any

from compat import placeholder
from compat.surface import complete, resolve
from diffusion.names import KSAMPLER_NAMES, SAMPLER_NAMES, SCHEDULER_NAMES

SAMPLER_NAMES = list(SAMPLER_NAMES)
KSAMPLER_NAMES = list(KSAMPLER_NAMES)
SCHEDULER_NAMES = list(SCHEDULER_NAMES)


class KSampler(placeholder.klass("comfy.samplers.KSampler")):  # type: ignore[misc]
    """The reference's sampler object: its name lists are Loom's; making one fails (no such machinery here)."""

    SAMPLERS = SAMPLER_NAMES
    SCHEDULERS = SCHEDULER_NAMES
    DISCARD_PENULTIMATE_SIGMA_SAMPLERS = {"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"}


sampler_object = placeholder.function("comfy.samplers.sampler_object")

complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
