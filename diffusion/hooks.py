"""Hooks: LoRA and model-as-LoRA weight patches scoped to the conditioning entries they are attached to.

A HOOKS value (`HookGroup`) holds weight hooks; each carries a LoRA file's tensors or another checkpoint's weights
(applied as `W + strength * (W_other - W)`), a model and a CLIP strength, and an optional keyframe schedule
(`Keyframes`: strength multipliers that take over at a fraction of sampling). Conditioning entries carry a group
under "hooks"; during sampling `HookedModels` gives each entry the model with its hooks' weights at the strength the
keyframes give at that step, made as a shared copy of the base (diffusion.lora.patch_copies), so the base model
is never changed. SetClipHooks' encoder uses `clip_schedule` to encode once per range of distinct strengths.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from diffusion.lora import WeightUpdate, match_lora, patch_copies

INTERPOLATIONS = ("linear", "ease_in", "ease_out", "ease_in_out")


class HookError(ValueError):
    """A hook that cannot apply to the model it meets (a checkpoint of another family, a foreign HOOKS value)."""


def interpolate(start: float, end: float, count: int, method: str) -> list[float]:
    """`count` values from `start` to `end` along an easing curve: linear, ease_in (quadratic), ease_out (its
    mirror) or ease_in_out (half a cosine)."""
    if count < 1:
        raise HookError(f"keyframe count must be at least 1, got {count}")
    t = torch.linspace(0.0, 1.0, count, dtype=torch.float64)
    curves: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "linear": lambda i: i,
        "ease_in": lambda i: i**2,
        "ease_out": lambda i: 1 - (1 - i) ** 2,
        "ease_in_out": lambda i: (1 - torch.cos(i * math.pi)) / 2,
    }
    if method not in curves:
        raise HookError(f"unknown interpolation {method!r}; expected one of {', '.join(INTERPOLATIONS)}")
    return [float(v) for v in start + (end - start) * curves[method](t)]


@dataclass(frozen=True)
class Keyframe:
    """From `start_percent` of sampling on, the hook's strengths are multiplied by `strength`. Once current, a
    keyframe stays for at least `guarantee_steps` steps before a later one may take over."""

    strength: float
    start_percent: float = 0.0
    guarantee_steps: int = 1


@dataclass(frozen=True)
class Keyframes:
    """A HOOK_KEYFRAMES value: keyframes sorted by start (equal starts keep the order they were added in). The
    first keyframe holds from the start of sampling until a later one takes over; no keyframes means 1.0."""

    frames: tuple[Keyframe, ...] = ()

    def add(self, *frames: Keyframe) -> Keyframes:
        return Keyframes(tuple(sorted((*self.frames, *frames), key=lambda f: f.start_percent)))

    def strength_at(self, percent: float) -> float:
        """The multiplier at a fraction of sampling, ignoring guaranteed steps (the CLIP schedule's view)."""
        current = self.frames[0].strength if self.frames else 1.0
        for frame in self.frames:
            if frame.start_percent <= percent:
                current = frame.strength
        return current


class KeyframeCursor:
    """Walks one sampling run through a keyframe schedule, step by step (a step is a new sigma): a later keyframe
    takes over once the step's sigma is at or below its start's, after the current one's guaranteed steps. A
    keyframe starting before the run's first sigma guarantees nothing (img2img runs skip what they start after)."""

    def __init__(self, keyframes: Keyframes, percent_to_sigma: Callable[[float], float], sigma_max: float) -> None:
        self.frames = keyframes.frames
        self.starts = [percent_to_sigma(f.start_percent) for f in self.frames]
        self.sigma_max = sigma_max
        self.index, self.used, self.last_sigma = 0, 0, math.nan

    def _guarantee(self, index: int) -> int:
        return 0 if self.starts[index] > self.sigma_max else self.frames[index].guarantee_steps

    def strength(self, sigma: float) -> float:
        if not self.frames:
            return 1.0
        if sigma != self.last_sigma:
            if self.used >= self._guarantee(self.index):
                for i in range(self.index + 1, len(self.frames)):
                    if self.starts[i] < sigma:
                        break
                    self.index, self.used = i, 0
                    if self._guarantee(i) > 0:
                        break
            self.used += 1
            self.last_sigma = sigma
        return self.frames[self.index].strength


@dataclass(frozen=True, eq=False)
class LoraWeights:
    """A LoRA file's tensors, matched to a model's layers when a hook meets one."""

    name: str
    tensors: Mapping[str, torch.Tensor]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


@dataclass(frozen=True, eq=False)
class CheckpointWeights:
    """Another checkpoint's parameters by component ("unet", "te1", "te2") and name, in Loom's module layout."""

    name: str
    components: Mapping[str, Mapping[str, torch.Tensor]]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for c in self.components.values() for t in c.values())


class _Identity:
    """What makes two hooks the same hook: kept by `with_keyframes`, so combining never applies one hook twice."""


@dataclass(frozen=True, eq=False)
class WeightHook:
    source: LoraWeights | CheckpointWeights
    strength_model: float
    strength_clip: float
    keyframes: Keyframes = Keyframes()
    identity: _Identity = field(default_factory=_Identity)

    def with_keyframes(self, keyframes: Keyframes) -> WeightHook:
        return replace(self, keyframes=keyframes)


@dataclass(frozen=True)
class HookGroup:
    """A HOOKS value: weight hooks applied together, each at most once."""

    hooks: tuple[WeightHook, ...] = ()

    def combine(self, *others: HookGroup | None) -> HookGroup:
        hooks = list(self.hooks)
        seen = {h.identity for h in hooks}
        for other in others:
            for hook in other.hooks if other is not None else ():
                if hook.identity not in seen:
                    hooks.append(hook)
                    seen.add(hook.identity)
        return HookGroup(tuple(hooks))

    def with_keyframes(self, keyframes: Keyframes) -> HookGroup:
        return HookGroup(tuple(h.with_keyframes(keyframes) for h in self.hooks))

    def loom_nbytes(self) -> int:
        """The memory the hooks' weights hold (each source once), for the output cache's accounting."""
        sources = {id(h.source): h.source for h in self.hooks}
        return sum(source.nbytes() for source in sources.values())


def combine_groups(groups: Iterable[HookGroup | None]) -> HookGroup | None:
    """Every given group's hooks in order; None when no group is given."""
    present = [g for g in groups if g is not None]
    return present[0].combine(*present[1:]) if present else None


@dataclass(frozen=True)
class ModelDiff:
    """Model-as-LoRA: moves a parameter towards another checkpoint's, `W + strength * (W_other - W)`."""

    component: str
    parameter: str
    target: torch.Tensor

    def add_to(self, work: torch.Tensor, base: torch.Tensor, strength: float) -> None:
        work.add_(self.target.to(work.device, torch.float32) - base.to(torch.float32), alpha=strength)


def weight_updates(source: LoraWeights | CheckpointWeights, components: Mapping[str, nn.Module]) -> list[WeightUpdate]:
    """The updates a hook's weights make to `components`. Keys for components not given (a LoRA's text-encoder
    keys when patching the UNet) are left out, as the hooks of the reference do; many LoRAs have no text-encoder
    part, so an empty answer is the caller's to judge."""
    if isinstance(source, LoraWeights):
        return list(match_lora(source.tensors, components).patches)
    updates: list[WeightUpdate] = []
    for name, module in components.items():
        target = source.components.get(name, {})
        for parameter, value in module.named_parameters():
            other = target.get(parameter)
            if other is not None and other.shape == value.shape:
                updates.append(ModelDiff(name, parameter, other))
    return updates


@dataclass(frozen=True)
class ClipHooks:
    """What SetClipHooks puts on a CLIP: its hooks, whether encoded conditionings carry them into sampling, and
    whether the encoder follows their keyframes (one encoding per range) or encodes once at strength_clip."""

    group: HookGroup
    apply_to_conds: bool = True
    schedule: bool = False


def clip_schedule(group: HookGroup, scheduled: bool) -> list[tuple[float, float, list[float]]]:
    """(start, end, CLIP strength per hook) ranges covering sampling: one range (keyframes ignored) unless
    `scheduled`, else one per span over which no hook's keyframe strength changes."""
    if not scheduled:
        return [(0.0, 1.0, [h.strength_clip for h in group.hooks])]
    bounds = sorted({0.0, 1.0, *(f.start_percent for h in group.hooks for f in h.keyframes.frames)})
    ranges: list[tuple[float, float, list[float]]] = []
    for start, end in itertools.pairwise(bounds):
        strengths = [h.strength_clip * h.keyframes.strength_at(start) for h in group.hooks]
        if ranges and ranges[-1][2] == strengths:
            ranges[-1] = (ranges[-1][0], end, strengths)
        else:
            ranges.append((start, end, strengths))
    return ranges


def patch_components(
    components: Mapping[str, nn.Module], hooks: Sequence[tuple[WeightHook, float]]
) -> dict[str, nn.Module]:
    """`components` with the hooks' weights at the given strengths, as shared copies (the inputs stay as they are)."""
    updates = [(u, s) for hook, s in hooks if s != 0.0 for u in weight_updates(hook.source, components)]
    return patch_copies(components, updates)


HookKey = tuple[tuple[_Identity, float], ...]  # (hook, model strength) of every hook with a nonzero strength


class HookedModels:
    """The models one sampling run predicts hooked entries with. `key` says, for an entry's hooks at a step,
    which weights apply; `model` gives the base model with them (the base itself for no hooks), patching each
    distinct group once per strength change and keeping one copy per group."""

    def __init__(self, base: Any, sigma_max: float) -> None:
        self.base = base
        self.sigma_max = sigma_max
        self._cursors: dict[tuple[_Identity, Keyframes], KeyframeCursor] = {}
        self._updates: dict[_Identity, list[WeightUpdate]] = {}
        self._hooks: dict[_Identity, WeightHook] = {}
        self._models: dict[tuple[_Identity, ...], tuple[HookKey, Any]] = {}

    def key(self, hooks: Any, sigma: float) -> HookKey:
        if hooks is None:
            return ()
        if not isinstance(hooks, HookGroup):
            raise HookError(f"a conditioning entry's hooks are a {type(hooks).__name__}, not a HOOKS value")
        key = []
        for hook in hooks.hooks:
            cursor = self._cursors.get((hook.identity, hook.keyframes))
            if cursor is None:
                cursor = KeyframeCursor(hook.keyframes, self.base.schedule.percent_to_sigma, self.sigma_max)
                self._cursors[(hook.identity, hook.keyframes)] = cursor
                self._hooks[hook.identity] = hook
            strength = hook.strength_model * cursor.strength(sigma)
            if strength != 0.0:
                key.append((hook.identity, strength))
        return tuple(key)

    def model(self, key: HookKey) -> Any:
        if not key:
            return self.base
        group = tuple(identity for identity, _ in key)
        held = self._models.get(group)
        if held is not None and held[0] == key:
            return held[1]
        unet = self.base.unet
        updates = []
        for identity, strength in key:
            if identity not in self._updates:
                source = self._hooks[identity].source
                self._updates[identity] = weight_updates(source, {"unet": unet})
                if not self._updates[identity]:
                    raise HookError(f"hook {source.name!r}: no weight fits a layer of this model (another family?)")
            updates += [(u, strength) for u in self._updates[identity]]
        model = self.base.with_unet(patch_copies({"unet": unet}, updates)["unet"])
        self._models[group] = (key, model)
        return model
