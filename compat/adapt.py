"""What a pack's node is handed: Loom's MODEL values wrapped in the ModelPatcher facade packs expect.

Pack nodes call `model.clone()`, read `model.model_options` and add patches; Loom's MODEL (a DiffusionModel) has
none of that. `adapt(spec)` (given to engine.packs.load_packs) wraps the invoke of a pack node with MODEL inputs
so each such input arrives as `comfy.model_patcher.ModelPatcher` around Loom's model. What the node returns
stays a facade, which Loom's own nodes run as the patched model (and refuse by name when it carries options
Loom's sampler cannot honour).
"""

from __future__ import annotations

from typing import Any

from engine.spec import Invoke, NodeSpec

MODEL = "MODEL"


def adapt(spec: NodeSpec) -> Invoke:
    names = [i.name for i in spec.inputs if i.type == MODEL]
    invoke = spec.invoke
    if not names:
        return invoke

    def wrapped(kwargs: dict[str, Any]) -> Any:
        for name in names:
            value = kwargs.get(name)
            if value is not None:
                kwargs[name] = as_patcher(value)
        return invoke(kwargs)

    return wrapped


def as_patcher(value: Any) -> Any:
    """Loom's model in a ModelPatcher (a list input's items each); anything else as it is."""
    if isinstance(value, list):
        return [as_patcher(v) for v in value]
    unet = getattr(value, "unet", None)
    manager = getattr(value, "manager", None)
    if unet is None or manager is None or callable(getattr(type(value), "loom_model", None)):
        return value
    from comfy.model_patcher import ModelPatcher

    return ModelPatcher(value, manager.device, manager.offload_device)
