"""`comfy.model_patcher.ModelPatcher` for node packs: a facade over Loom's MODEL that Loom's sampler runs.

Packs clone a model, add weight patches and set model options, or wrap their own modules in a ModelPatcher (and
subclass it). Here the facade keeps the reference's bookkeeping (`patches`, `model_options`, `object_patches`)
and, wrapped around Loom's DiffusionModel, answers every attribute Loom's sampler reads from the model with the
patched model: weight patches (LDM key names, `diffusion_model.` prefix) are applied to a copy of the UNet as
`strength_model * w + strength_patch * diff`; `sampler_cfg_function` and `sampler_post_cfg_function` run as
Loom's post-guidance steps (diffusion.model.DiffusionModel.with_post_guidance). Other model options that change
how sampling works (UNet wrappers, attention patches) have no counterpart in Loom's sampler; sampling with one
set fails naming it.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from compat import placeholder
from compat.surface import complete, resolve

UNET_PREFIX = "diffusion_model."
# Options that only carry data Loom's sampler does not need; any other key changes sampling and is refused.
_CFG = "sampler_cfg_function"
_POST_CFG = "sampler_post_cfg_function"
# Options Loom's sampler honours (the cfg functions run as post-guidance steps) or that carry only data.
_INERT_OPTIONS = frozenset({"transformer_options", _CFG, _POST_CFG})
_PATCH_HOOKS = frozenset({"patches", "patches_replace"})


class ModelPatcher:
    def __init__(
        self,
        model: Any,
        load_device: Any = None,
        offload_device: Any = None,
        size: int = 0,
        weight_inplace_update: bool = False,
        **options: Any,
    ) -> None:
        self.model = model
        self.load_device = load_device
        self.offload_device = offload_device
        self.size = size
        self.weight_inplace_update = weight_inplace_update
        self.patches: dict[str, list[tuple[Any, ...]]] = {}
        self.object_patches: dict[str, Any] = {}
        self.model_options: dict[str, Any] = {"transformer_options": {}}
        self.patches_uuid = uuid.uuid4()
        self.parent: ModelPatcher | None = None
        self._patched: tuple[Any, Any] | None = None

    # -- the reference's bookkeeping --------------------------------------------------------------------------

    def clone(self) -> ModelPatcher:
        twin = copy.copy(self)
        twin.patches = {k: list(v) for k, v in self.patches.items()}
        twin.object_patches = dict(self.object_patches)
        twin.model_options = copy.deepcopy(self.model_options)
        twin.parent = self
        twin._patched = None
        return twin

    def is_clone(self, other: Any) -> bool:
        return getattr(other, "model", None) is self.model

    def model_size(self) -> int:
        nbytes = getattr(self.model, "loom_nbytes", None)
        return int(nbytes()) if callable(nbytes) else self.size

    def model_dtype(self) -> Any:
        manager = getattr(self.model, "manager", None)
        return getattr(manager, "dtype", None)

    def model_state_dict(self, filter_prefix: str | None = None) -> dict[str, Any]:
        """The wrapped UNet's tensors under their LDM names (`diffusion_model.`...), as packs address them."""
        names = self._ldm_names()
        state = self._unet().state_dict()
        out = {UNET_PREFIX + names[k]: v for k, v in state.items() if k in names}
        return {k: v for k, v in out.items() if filter_prefix is None or k.startswith(filter_prefix)}

    def add_patches(
        self, patches: Mapping[str, Any], strength_patch: float = 1.0, strength_model: float = 1.0
    ) -> list[str]:
        """Record weight patches for keys the model has; returns the keys taken (the reference's contract)."""
        known = set(self.model_state_dict())
        taken = []
        for key, patch in patches.items():
            name = key[0] if isinstance(key, tuple) else key
            if name in known:
                self.patches.setdefault(name, []).append((strength_patch, patch, strength_model))
                taken.append(key)
        self.patches_uuid = uuid.uuid4()
        self._patched = None
        return taken

    def get_key_patches(self, filter_prefix: str | None = None) -> dict[str, list[Any]]:
        return {k: list(v) for k, v in self.patches.items() if filter_prefix is None or k.startswith(filter_prefix)}

    def add_object_patch(self, name: str, obj: Any) -> None:
        self.object_patches[name] = obj

    def get_model_object(self, name: str) -> Any:
        if name in self.object_patches:
            return self.object_patches[name]
        target = self.model
        for part in name.split("."):
            target = getattr(target, part)
        return target

    def set_model_options_value(self, key: str, value: Any) -> None:
        self.model_options[key] = value

    def set_model_sampler_cfg_function(self, function: Callable[..., Any], disable_cfg1_optimization: bool = False):
        self.model_options["sampler_cfg_function"] = function

    def set_model_sampler_post_cfg_function(self, function: Callable[..., Any], disable_cfg1_optimization=False):
        self.model_options.setdefault("sampler_post_cfg_function", []).append(function)

    def set_model_sampler_pre_cfg_function(self, function: Callable[..., Any], disable_cfg1_optimization=False):
        self.model_options.setdefault("sampler_pre_cfg_function", []).append(function)

    def set_model_unet_function_wrapper(self, function: Callable[..., Any]) -> None:
        self.model_options["model_function_wrapper"] = function

    def set_model_denoise_mask_function(self, function: Callable[..., Any]) -> None:
        self.model_options["denoise_mask_function"] = function

    def set_model_patch(self, patch: Any, name: str) -> None:
        to = self.model_options["transformer_options"]
        to.setdefault("patches", {}).setdefault(name, []).append(patch)

    def set_model_patch_replace(self, patch: Any, name: str, block_name: str, number: int, transformer_index=None):
        to = self.model_options["transformer_options"]
        block = (block_name, number) if transformer_index is None else (block_name, number, transformer_index)
        to.setdefault("patches_replace", {}).setdefault(name, {})[block] = patch

    def set_model_attn1_replace(self, patch: Any, block_name: str, number: int, transformer_index: Any = None):
        self.set_model_patch_replace(patch, "attn1", block_name, number, transformer_index)

    def set_model_attn2_replace(self, patch: Any, block_name: str, number: int, transformer_index: Any = None):
        self.set_model_patch_replace(patch, "attn2", block_name, number, transformer_index)

    def set_model_attn1_patch(self, patch: Any) -> None:
        self.set_model_patch(patch, "attn1_patch")

    def set_model_attn2_patch(self, patch: Any) -> None:
        self.set_model_patch(patch, "attn2_patch")

    def set_model_attn1_output_patch(self, patch: Any) -> None:
        self.set_model_patch(patch, "attn1_output_patch")

    def set_model_attn2_output_patch(self, patch: Any) -> None:
        self.set_model_patch(patch, "attn2_output_patch")

    def set_model_input_block_patch(self, patch: Any) -> None:
        self.set_model_patch(patch, "input_block_patch")

    def set_model_output_block_patch(self, patch: Any) -> None:
        self.set_model_patch(patch, "output_block_patch")

    # -- what Loom's sampler sees -----------------------------------------------------------------------------

    def loom_model(self) -> Any:
        """The wrapped Loom model with the weight patches applied and the cfg functions as post-guidance steps (a
        copy; the original stays untouched)."""
        refused = self._unhonoured_options()
        if refused:
            placeholder.fail(f"comfy.model_patcher.ModelPatcher model_options {refused} (Loom's sampler has no hooks)")
        cfg = self.model_options.get(_CFG)
        post = tuple(self.model_options.get(_POST_CFG, ()))
        key = (self.patches_uuid, id(cfg), tuple(id(f) for f in post))
        if not self.patches and cfg is None and not post:
            return self.model
        if self._patched is None or self._patched[0] != key:
            model = self.model.with_unet(self._patched_unet()) if self.patches else self.model
            if cfg is not None:
                model = model.with_post_guidance(partial(_cfg_step, cfg, self))
            for function in post:
                model = model.with_post_guidance(partial(_post_cfg_step, function, self))
            self._patched = (key, model)
        return self._patched[1]

    def _unhonoured_options(self) -> list[str]:
        keys = [k for k in self.model_options if k not in _INERT_OPTIONS]
        transformer = self.model_options.get("transformer_options", {})
        keys += [f"transformer_options[{k!r}]" for k in transformer if k in _PATCH_HOOKS and transformer[k]]
        return keys

    def _unet(self) -> Any:
        unet = getattr(self.model, "unet", None)
        if unet is None:
            placeholder.fail("comfy.model_patcher.ModelPatcher over a model that is not a Loom diffusion model")
        return unet

    def _ldm_names(self) -> dict[str, str]:
        from diffusion.ldm_names import ldm_state_dict_names

        return ldm_state_dict_names(self._unet())

    def _patched_unet(self) -> Any:
        import torch

        from diffusion.lora import shared_copy

        unet = shared_copy(self._unet())
        by_ldm = {UNET_PREFIX + ldm: name for name, ldm in self._ldm_names().items()}
        params = dict(unet.named_parameters())
        with torch.no_grad():
            for key, entries in self.patches.items():
                name = by_ldm[key]
                weight = params[name].detach().float().clone()
                for strength_patch, patch, strength_model in entries:
                    diff = patch[0] if isinstance(patch, tuple) and len(patch) == 1 else patch
                    if not isinstance(diff, torch.Tensor):
                        placeholder.fail(f"comfy.model_patcher weight patches of kind {type(patch).__name__}")
                    weight = weight * strength_model + strength_patch * diff.to(weight.device, torch.float32)
                _set_parameter(unet, name, weight.to(params[name].dtype))
        return unet

    def __getattr__(self, name: str) -> Any:
        """Attributes Loom's sampler reads (unet, schedule, manager, ...) come from the patched Loom model."""
        if name.startswith("_") or name == "model":
            raise AttributeError(name)
        return getattr(self.loom_model(), name)


def _step_args(step: Any, patcher: ModelPatcher) -> dict[str, Any]:
    """The reference's cfg-function arguments from Loom's guidance step (estimates are x0 predictions)."""
    return {
        "denoised": step.guided,
        "cond_denoised": step.cond,
        "uncond_denoised": step.uncond,
        "cond_scale": step.scale,
        "sigma": step.sigma,
        "timestep": step.sigma,
        "input": step.x,
        "model": patcher,
        "model_options": patcher.model_options,
    }


def _cfg_step(function: Callable[..., Any], patcher: ModelPatcher, step: Any) -> Any:
    """`sampler_cfg_function` replaces the cfg mix: it gets the noise predictions `x - estimate` and returns the
    guided one, so the guided estimate is `x - function(args)`."""
    if step.uncond is None:
        placeholder.fail("a sampler_cfg_function without a negative estimate (Loom skipped it at this cfg)")
    args = _step_args(step, patcher) | {"cond": step.x - step.cond, "uncond": step.x - step.uncond}
    return step.x - function(args)


def _post_cfg_step(function: Callable[..., Any], patcher: ModelPatcher, step: Any) -> Any:
    """`sampler_post_cfg_function` gets the guided estimate as `denoised` and returns the new one."""
    return function(_step_args(step, patcher))


def _set_parameter(module: Any, name: str, value: Any) -> None:
    import torch

    owner_name, _, leaf = name.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    setattr(owner, leaf, torch.nn.Parameter(value, requires_grad=False))


complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
