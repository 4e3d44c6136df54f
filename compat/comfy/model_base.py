"""`comfy.model_base` for node packs: `ModelType` (what kind of prediction a model makes) and, by name only, the
reference's model classes (compat.surface). Loom's MODEL is a diffusion.model.DiffusionModel; its `prediction`
("eps" or "v") is what `ModelType.EPS` / `ModelType.V_PREDICTION` name here."""

from __future__ import annotations

import enum
from typing import Any

from compat.surface import complete, resolve


class ModelType(enum.Enum):
    EPS = 1
    V_PREDICTION = 2
    V_PREDICTION_EDM = 3
    STABLE_CASCADE = 4
    EDM = 5
    FLOW = 6
    V_PREDICTION_CONTINUOUS = 7
    FLUX = 8
    IMG_TO_IMG = 9
    FLOW_COSMOS = 10


complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
