"""What packs expect of the host's `nodes` module, served by Loom's own `nodes` package through its `__getattr__`
(`MAX_RESOLUTION` comes from nodes.latent).

`NODE_CLASS_MAPPINGS` is a read-only view of the registry: a pack's protocol class is returned as it is; a
native node comes wrapped in a small protocol class (INPUT_TYPES, RETURN_TYPES, FUNCTION) so a pack can read its
schema or call it: `nodes.KSampler().sample(model, seed, ...)` runs Loom's sampler. The method is `execute` and,
for the built-ins packs call directly, also the reference's method name; positional arguments follow the
node's input order. `nodes.<ClassType>` gives the same class; `common_ksampler` runs Loom's KSampler.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from typing import Any

from compat.host import bound, refuse
from engine.context import NodeContext, RunControl, current_context
from engine.events import discard
from engine.results import normalise
from engine.spec import NodeSpec


class NodeClassView(Mapping[str, type]):
    def __init__(self, registry: Any) -> None:
        self._registry = registry
        self._wrappers: dict[str, type] = {}

    def __getitem__(self, class_type: str) -> type:
        spec = self._registry.get(class_type)
        if spec is None:
            raise KeyError(class_type)
        original = _protocol_class(spec)
        if original is not None:
            return original
        if class_type not in self._wrappers:
            self._wrappers[class_type] = _wrap(spec)
        return self._wrappers[class_type]

    def __iter__(self) -> Iterator[str]:
        return iter([spec.class_type for spec in self._registry])

    def __len__(self) -> int:
        return len(self._registry)


def _protocol_class(spec: NodeSpec) -> type | None:
    """The class a protocol node was registered from, found again through its module's NODE_CLASS_MAPPINGS."""
    mappings = getattr(sys.modules.get(spec.python_module), "NODE_CLASS_MAPPINGS", None)
    cls = mappings.get(spec.class_type) if isinstance(mappings, Mapping) else None
    return cls if isinstance(cls, type) else None


# The method names the reference gives the built-ins that packs call directly (`nodes.VAEDecode().decode(...)`), and
# the order of its parameters where Loom's inputs come in another order (None: a parameter Loom's node lacks and
# the reference ignores there too).
REFERENCE_FUNCTIONS: dict[str, tuple[str, tuple[str | None, ...] | None]] = {
    "KSampler": ("sample", None),
    "KSamplerAdvanced": ("sample", None),
    "CheckpointLoaderSimple": ("load_checkpoint", None),
    "VAELoader": ("load_vae", None),
    "LoraLoader": ("load_lora", None),
    "LoraLoaderModelOnly": ("load_lora_model_only", None),
    "CLIPTextEncode": ("encode", ("clip", "text")),
    "CLIPSetLastLayer": ("set_last_layer", None),
    "VAEDecode": ("decode", ("vae", "samples")),
    "VAEDecodeTiled": ("decode", ("vae", "samples", "tile_size", "overlap")),
    "VAEEncode": ("encode", ("vae", "pixels")),
    "VAEEncodeTiled": ("encode", ("vae", "pixels", "tile_size", "overlap")),
    "VAEEncodeForInpaint": ("encode", ("vae", "pixels", "mask", "grow_mask_by")),
    "EmptyLatentImage": ("generate", None),
    "LatentUpscale": ("upscale", None),
    "LatentUpscaleBy": ("upscale", None),
    "ImageScale": ("upscale", None),
    "ImageScaleBy": ("upscale", None),
    "ImageUpscaleWithModel": ("upscale", None),
    "UpscaleModelLoader": ("load_model", None),
    "ControlNetLoader": ("load_controlnet", None),
    "DiffControlNetLoader": ("load_controlnet", None),
    "ControlNetApply": ("apply_controlnet", None),
    "ControlNetApplyAdvanced": ("apply_controlnet", None),
    "ConditioningCombine": ("combine", None),
    "ConditioningSetArea": ("append", None),
    "ConditioningSetMask": ("append", ("conditioning", "mask", "set_cond_area", "strength")),
    "ConditioningZeroOut": ("zero_out", None),
    "LoadImage": ("load_image", None),
    "SaveImage": ("save_images", None),
    "PreviewImage": ("save_images", ("images", None, "prompt", "extra_pnginfo")),
    "SetLatentNoiseMask": ("set_mask", None),
    "ImageInvert": ("invert", None),
    "ImageBatch": ("batch", None),
    "RepeatLatentBatch": ("repeat", None),
    "LatentFromBatch": ("frombatch", None),
    "ConditioningConcat": ("concat", None),
    "ConditioningAverage": ("addWeighted", None),
    "ConditioningSetTimestepRange": ("set_range", None),
    "ConditioningSetAreaPercentage": ("append", None),
    "LatentComposite": ("composite", None),
    "LatentBlend": ("blend", None),
    "LatentCrop": ("crop", None),
    "ImageCrop": ("crop", None),
    "MaskToImage": ("mask_to_image", None),
    "ImageToMask": ("image_to_mask", None),
    "ImageScaleToTotalPixels": ("upscale", None),
    "LoadImageMask": ("load_image", None),
    "Canny": ("detect_edge", None),
}


def _wrap(spec: NodeSpec) -> type:
    function, order = REFERENCE_FUNCTIONS.get(spec.class_type, ("execute", None))
    names: tuple[str | None, ...] = order or tuple(i.name for i in spec.inputs)

    def input_types(cls: type) -> dict[str, Any]:
        return spec.schema()["input"]

    def execute(self: Any, *args: Any, **inputs: Any) -> Any:
        if len(args) > len(names):
            raise TypeError(f"{spec.class_type} takes {len(names)} inputs, got {len(args)} positional arguments")
        inputs.update((name, value) for name, value in zip(names, args, strict=False) if name is not None)
        for declared in spec.inputs:  # what the executor would fill in: widget defaults, hidden values
            if declared.name not in inputs and (declared.kind == "hidden" or declared.default is not None):
                inputs[declared.name] = None if declared.kind == "hidden" else declared.default
        if spec.wants_context:
            inputs["__context__"] = current_context() or _standalone(spec.class_type)
        return _as_protocol_result(spec, spec.invoke(inputs))

    return type(
        spec.class_type,
        (),
        {
            "INPUT_TYPES": classmethod(input_types),
            "RETURN_TYPES": tuple(o.type for o in spec.outputs),
            "RETURN_NAMES": tuple(o.name for o in spec.outputs),
            "OUTPUT_IS_LIST": tuple(o.is_list for o in spec.outputs),
            "FUNCTION": function,
            "CATEGORY": spec.category,
            "DESCRIPTION": spec.description,
            "OUTPUT_NODE": spec.output_node,
            "execute": execute,
            function: execute,
            "__module__": spec.python_module,
        },
    )


def _standalone(class_type: str) -> NodeContext:
    """A context for a built-in called outside any running node (at import, from a route): the host's
    environment, its own interrupt switch, and nobody listening to its progress."""
    host = bound()
    return NodeContext("", "", "", class_type, discard, RunControl(), env=host.env if host is not None else None)


def common_ksampler(
    model: Any,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: Any,
    negative: Any,
    latent: Any,
    denoise: float = 1.0,
    disable_noise: bool = False,
    start_step: int | None = None,
    last_step: int | None = None,
    force_full_denoise: bool = False,
) -> tuple[Any]:
    """The reference's shared sampling call, run by Loom's KSampler (or KSamplerAdvanced for a step range)."""
    common = {
        "model": model,
        "steps": steps,
        "cfg": cfg,
        "sampler_name": sampler_name,
        "scheduler": scheduler,
        "positive": positive,
        "negative": negative,
        "latent_image": latent,
    }
    if start_step is None and last_step is None and not disable_noise:
        return host_attribute("KSampler")().sample(seed=seed, denoise=denoise, **common)  # type: ignore[no-any-return]
    if denoise != 1.0:
        raise ValueError("common_ksampler: denoise below 1 cannot be combined with a step range or disabled noise")
    advanced = host_attribute("KSamplerAdvanced")()
    return advanced.sample(  # type: ignore[no-any-return]
        noise_seed=seed,
        add_noise="disable" if disable_noise else "enable",
        start_at_step=start_step or 0,
        end_at_step=10000 if last_step is None else last_step,
        return_with_leftover_noise="disable" if force_full_denoise else "enable",
        **common,
    )


def _as_protocol_result(spec: NodeSpec, raw: Any) -> Any:
    """A native node's return value in the protocol's shape: a tuple, or a `{"result", "ui"}` dict."""
    result = normalise(spec, raw, spec.class_type)
    return {"result": result.outputs, "ui": result.ui} if result.ui else result.outputs


def host_attribute(name: str) -> Any:
    """`nodes.NAME` for packs: the mappings, or a registered node class by its type name."""
    host = bound()
    if name == "__all__" and host is not None:  # `from nodes import *` in a pack: the reference's public names
        builtins = [spec.class_type for spec in host.registry if host.registry.source(spec.class_type) == "builtin"]
        return ["MAX_RESOLUTION", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "common_ksampler", *builtins]
    if host is None or name.startswith("__"):
        # Unbound (packs disabled) it must stay a plain AttributeError: `from nodes import latent` probes with it.
        raise AttributeError(f"module 'nodes' has no attribute {name!r}")
    registry = host.registry
    if host.node_classes is None:
        host.node_classes = NodeClassView(registry)
    view = host.node_classes
    if name == "NODE_CLASS_MAPPINGS":
        return view
    if name == "NODE_DISPLAY_NAME_MAPPINGS":
        return {spec.class_type: spec.display_name for spec in registry}
    if name == "common_ksampler":
        return common_ksampler
    if name in view:
        return view[name]
    refuse("nodes", name)
