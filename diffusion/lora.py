"""LoRA files: read them, match their keys to layers, and patch copies of models without touching the base.

A patched model is a structural copy of the base whose untouched parameters ARE the base's tensors (shared, not
copied) and whose patched layers hold new weights `W + strength * alpha/rank * up @ down`. The base stays
bit-identical however many LoRAs are applied and dropped, stacking is applying to a patched copy, and removing a
LoRA is dropping the copy. `patch_copies` does the same for any `WeightUpdate` (hooks' model-as-LoRA diffs too),
each with its own strength.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from diffusion.lora_keys import Target, module_table, resolve

# Key suffixes, most specific first: (suffix, part).
_SUFFIXES = (
    (".lora_down.weight", "down"),
    (".lora_up.weight", "up"),
    (".lora_A.weight", "down"),
    (".lora_B.weight", "up"),
    (".lora.down.weight", "down"),
    (".lora.up.weight", "up"),
    (".down.weight", "down"),
    (".up.weight", "up"),
    (".alpha", "alpha"),
    (".diff_b", "diff_b"),
    (".diff", "diff"),
)
# Parts of other adapter kinds (LoHa, LoKr, Tucker-LoCon, DoRA) Loom does not apply.
_UNSUPPORTED = ("hada_", "lokr_", ".lora_mid.", ".dora_scale", ".on_input")


@dataclass(frozen=True, slots=True)
class LoraPatch:
    """One layer's low-rank update: delta = scale * up @ down, with scale = alpha / rank (1 without alpha).

    For a conv layer (LoCon) `down` is the k x k conv to `rank` channels and `up` a 1x1 conv back, so flattening
    both to matrices gives the delta of the layer's weight viewed as [out, in * k * k]."""

    target: Target
    down: torch.Tensor
    up: torch.Tensor
    scale: float

    @property
    def component(self) -> str:
        return self.target.component

    @property
    def parameter(self) -> str:
        return f"{self.target.module}.weight"

    def add_to(self, work: torch.Tensor, base: torch.Tensor, strength: float) -> None:
        """`work += strength * scale * up @ down` in place, on the weight viewed as [out, in * kernel]."""
        flat = work.view(work.shape[0], -1)
        up = self.up.to(flat.device, flat.dtype).reshape(self.up.shape[0], -1)
        down = self.down.to(flat.device, flat.dtype).reshape(self.down.shape[0], -1)
        flat.addmm_(up, down, alpha=strength * self.scale)


@dataclass(frozen=True, slots=True)
class DiffPatch:
    """A whole-tensor difference (`.diff` for a weight, `.diff_b` for a bias): what full-rank extractions and
    trainers store for layers a low-rank pair cannot describe (norms, biases)."""

    target: Target
    delta: torch.Tensor
    param: str = "weight"  # or "bias"

    @property
    def component(self) -> str:
        return self.target.component

    @property
    def parameter(self) -> str:
        return f"{self.target.module}.{self.param}"

    def add_to(self, work: torch.Tensor, base: torch.Tensor, strength: float) -> None:
        """`work += strength * delta` in place, the delta viewed as `work` is."""
        work.add_(self.delta.to(work.device, work.dtype).reshape(work.shape), alpha=strength)


Patch = LoraPatch | DiffPatch


@dataclass(slots=True)
class LoraMatch:
    """A file's patches for one set of models, and the keys that patch nothing (key -> why), never dropped silently."""

    patches: list[Patch] = field(default_factory=list)
    unmapped: dict[str, str] = field(default_factory=dict)


def _split(key: str) -> tuple[str, str] | None:
    for suffix, part in _SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], part
    return None


def match_lora(state_dict: Mapping[str, torch.Tensor], components: Mapping[str, nn.Module]) -> LoraMatch:
    """Match every key of a LoRA state dict to a layer of `components` (`unet`, `te1`, `te2`)."""
    tables = {name: module_table(name, model) for name, model in components.items()}
    groups: dict[str, dict[str, tuple[str, torch.Tensor]]] = {}
    result = LoraMatch()
    for key, tensor in state_dict.items():
        if any(marker in key for marker in _UNSUPPORTED):
            result.unmapped[key] = "adapter kind not supported (only plain LoRA/LoCon)"
            continue
        split = _split(key)
        if split is None:
            result.unmapped[key] = "not a LoRA weight name"
            continue
        groups.setdefault(split[0], {})[split[1]] = (key, tensor)
    for stem, parts in groups.items():
        keys = [k for k, _ in parts.values()]
        targets = resolve(stem, tables)
        if targets is None:
            result.unmapped.update(dict.fromkeys(keys, "no such layer in the model"))
            continue
        for part, param in (("diff", "weight"), ("diff_b", "bias")):
            if part in parts:
                key, delta = parts.pop(part)
                diffs = [_fitted_diff(target, delta, param, components) for target in targets]
                misfit = next((d for d in diffs if isinstance(d, str)), None)
                if misfit is not None:
                    result.unmapped[key] = misfit
                else:
                    result.patches.extend(d for d in diffs if isinstance(d, DiffPatch))
        if not parts:
            continue
        keys = [k for k, _ in parts.values()]
        if "down" not in parts or "up" not in parts:
            result.unmapped.update(dict.fromkeys(keys, "needs both an up and a down weight"))
            continue
        down, up = parts["down"][1], parts["up"][1]
        alpha = parts.get("alpha")
        scale = float(alpha[1]) / down.shape[0] if alpha is not None else 1.0
        patches = [_fitted(target, down, up, scale, components) for target in targets]
        misfit = next((p for p in patches if isinstance(p, str)), None)
        if misfit is not None:
            result.unmapped.update(dict.fromkeys(keys, misfit))
            continue
        result.patches.extend(p for p in patches if isinstance(p, LoraPatch))
    return result


def _fitted(
    target: Target, down: torch.Tensor, full_up: torch.Tensor, scale: float, components: Mapping[str, nn.Module]
) -> LoraPatch | str:
    """The patch of one layer, or why the LoRA's shapes do not fit it."""
    weight = components[target.component].get_submodule(target.module).weight
    rank, rows = down.shape[0], weight.shape[0]
    misfit = f"shape does not fit layer of shape {tuple(weight.shape)}"
    if full_up.shape[0] < (target.rows[1] if target.rows is not None else rows):
        return misfit
    up = target.take(full_up)
    fits = up.shape[0] == rows and up.numel() == rows * rank and down.numel() == rank * (weight.numel() // rows)
    if weight.ndim < 2 or not fits:
        return misfit
    return LoraPatch(target, down, up, scale)


def _fitted_diff(
    target: Target, delta: torch.Tensor, param: str, components: Mapping[str, nn.Module]
) -> DiffPatch | str:
    """The whole-tensor difference of one layer's weight or bias, or why it does not fit."""
    own = getattr(components[target.component].get_submodule(target.module), param, None)
    if own is None:
        return f"the layer has no {param}"
    part = target.take(delta)
    if part.numel() != own.numel():
        return f"{param} difference does not fit the layer's {param} of shape {tuple(own.shape)}"
    return DiffPatch(target, part, param)


def shared_copy(model: nn.Module) -> nn.Module:
    """A structural copy of `model` whose parameters and buffers are the very tensors of `model`."""
    memo: dict[int, object] = {id(t): t for t in model.parameters()}
    memo.update({id(t): t for t in model.buffers()})
    return copy.deepcopy(model, memo)


class WeightUpdate(Protocol):
    """A change to one parameter of one component ("unet", "te1", "te2"): `add_to` adds it, at `strength`, to
    `work` (a float32 copy of the parameter that may already hold other updates); `base` is the unpatched value."""

    @property
    def component(self) -> str: ...

    @property
    def parameter(self) -> str: ...

    def add_to(self, work: torch.Tensor, base: torch.Tensor, strength: float) -> None: ...


def apply_patches(
    components: Mapping[str, nn.Module], patches: Sequence[Patch], strengths: Mapping[str, float]
) -> dict[str, nn.Module]:
    """`components` with each patched one replaced by a shared copy carrying the LoRA; the inputs are unchanged.

    `strengths` gives the strength per component; a component at strength 0 (or without patches) is returned as is.
    """
    return patch_copies(components, [(patch, float(strengths.get(patch.component, 0.0))) for patch in patches])


def patch_copies(
    components: Mapping[str, nn.Module], updates: Sequence[tuple[WeightUpdate, float]]
) -> dict[str, nn.Module]:
    """`components` with each updated one replaced by a shared copy carrying the updates in order, each at its
    strength; updates at strength 0 are skipped, so a component none changes is returned as is."""
    by_component: dict[str, dict[str, list[tuple[WeightUpdate, float]]]] = {}
    for update, strength in updates:
        if strength != 0.0:
            by_component.setdefault(update.component, {}).setdefault(update.parameter, []).append((update, strength))
    out = dict(components)
    for name, by_parameter in by_component.items():
        clone = shared_copy(components[name])
        with torch.no_grad():
            for parameter, todo in by_parameter.items():
                owner_name, _, leaf = parameter.rpartition(".")
                owner = clone.get_submodule(owner_name)
                base = getattr(owner, leaf)
                # One float32 copy of the tensor takes every delta in place (half-precision sums would lose bits).
                work = base.detach().to(torch.float32, copy=True)
                for update, strength in todo:
                    update.add_to(work, base, strength)
                setattr(owner, leaf, nn.Parameter(work.to(base.dtype), requires_grad=base.requires_grad))
        out[name] = clone
    return out
