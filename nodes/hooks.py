"""The hook nodes: LoRA / model-as-LoRA weights scoped to conditioning entries (diffusion.hooks), their keyframe
schedules, and the nodes that attach them, with masks and timestep ranges, to conditioning.

A HOOKS value is a `HookGroup`, a HOOK_KEYFRAMES value a `Keyframes`; both are immutable, so nodes return new
values and never change their inputs. Conditioning entries carry a group under "hooks" (combined with any hooks
they already had), and "default": True marks the entries a sampler uses where the others leave the frame uncovered.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.context import NodeContext
from engine.native import Boolean, Combo, Float, Input, Int, Out, Socket, node
from nodes.shared import Conditioning, file_input, model_file, model_files, model_manager, with_values

STRENGTH = {"min": -20.0, "max": 20.0, "step": 0.01}
PERCENT = {"min": 0.0, "max": 1.0, "step": 0.001}
PROPS_STRENGTH = {"min": 0.0, "max": 10.0, "step": 0.01}
AREAS = ["default", "mask bounds"]

COND = Socket("CONDITIONING")
HOOKS = Socket("HOOKS", optional=True)
KEYFRAMES = Socket("HOOK_KEYFRAMES", optional=True)
MASK = Socket("MASK", optional=True)
TIMESTEPS = Socket("TIMESTEPS_RANGE", optional=True)
PAIR = [Out("CONDITIONING", "positive"), Out("CONDITIONING", "negative")]


# -- creating hooks --------------------------------------------------------------------------------------------


def _stack(prev_hooks: Any, hook: Any = None) -> Any:
    """`prev_hooks` (or an empty group) with `hook` added after its hooks."""
    from diffusion.hooks import HookGroup

    previous = prev_hooks if prev_hooks is not None else HookGroup()
    return previous.combine(HookGroup((hook,))) if hook is not None else previous


def _lora_hook(lora_name: str, strength_model: float, strength_clip: float, prev_hooks: Any, ctx: NodeContext) -> Any:
    from diffusion.checkpoint import read_tensors
    from diffusion.hooks import LoraWeights, WeightHook

    if strength_model == 0 and strength_clip == 0:
        return _stack(prev_hooks)
    path = model_file(ctx.env, "loras", lora_name, "lora_name")
    return _stack(prev_hooks, WeightHook(LoraWeights(lora_name, read_tensors(path)), strength_model, strength_clip))


@node(
    category="advanced/hooks/create",
    outputs=["HOOKS"],
    display_name="Create Hook LoRA",
    experimental=True,
    fingerprint=file_input("loras", "lora_name"),
)
def CreateHookLora(
    lora_name: str = Combo(model_files("loras")),
    strength_model: float = Float(1.0, **STRENGTH),
    strength_clip: float = Float(1.0, **STRENGTH),
    prev_hooks: Any = HOOKS,
    *,
    ctx: NodeContext,
) -> Any:
    """A LoRA that applies only to the conditioning it is attached to (and to a CLIP through SetClipHooks)."""
    return _lora_hook(lora_name, strength_model, strength_clip, prev_hooks, ctx)


@node(
    category="advanced/hooks/create",
    outputs=["HOOKS"],
    display_name="Create Hook LoRA (MO)",
    experimental=True,
    fingerprint=file_input("loras", "lora_name"),
)
def CreateHookLoraModelOnly(
    lora_name: str = Combo(model_files("loras")),
    strength_model: float = Float(1.0, **STRENGTH),
    prev_hooks: Any = HOOKS,
    *,
    ctx: NodeContext,
) -> Any:
    """A hook LoRA for the diffusion model only."""
    return _lora_hook(lora_name, strength_model, 0.0, prev_hooks, ctx)


def _checkpoint_hook(
    ckpt_name: str, strength_model: float, strength_clip: float, prev_hooks: Any, ctx: NodeContext
) -> Any:
    from diffusion.checkpoint import CheckpointError
    from diffusion.hooks import CheckpointWeights, WeightHook
    from diffusion.loader import load_checkpoint

    path = model_file(ctx.env, "checkpoints", ckpt_name, "ckpt_name")
    try:
        ckpt = load_checkpoint(path, model_manager(ctx.env), want_clip=strength_clip != 0, want_vae=False)
    except CheckpointError as exc:
        raise ValueError(f"ckpt_name: {exc}") from exc
    components: dict[str, dict[str, Any]] = {}
    if ckpt.model is not None:
        components["unet"] = dict(ckpt.model.unet.named_parameters())
    if ckpt.clip is not None:
        components |= {name: dict(m.named_parameters()) for name, m in ckpt.clip.components().items()}
    if not components:
        raise ValueError(f"ckpt_name: {Path(path).name} holds no diffusion model or text encoder")
    return _stack(prev_hooks, WeightHook(CheckpointWeights(ckpt_name, components), strength_model, strength_clip))


@node(
    category="advanced/hooks/create",
    outputs=["HOOKS"],
    display_name="Create Hook Model as LoRA",
    experimental=True,
    fingerprint=file_input("checkpoints", "ckpt_name"),
)
def CreateHookModelAsLora(
    ckpt_name: str = Combo(model_files("checkpoints")),
    strength_model: float = Float(1.0, **STRENGTH),
    strength_clip: float = Float(1.0, **STRENGTH),
    prev_hooks: Any = HOOKS,
    *,
    ctx: NodeContext,
) -> Any:
    """Another checkpoint of the same family as a hook: weights move towards its own, W + s * (W_other - W)."""
    return _checkpoint_hook(ckpt_name, strength_model, strength_clip, prev_hooks, ctx)


@node(
    category="advanced/hooks/create",
    outputs=["HOOKS"],
    display_name="Create Hook Model as LoRA (MO)",
    experimental=True,
    fingerprint=file_input("checkpoints", "ckpt_name"),
)
def CreateHookModelAsLoraModelOnly(
    ckpt_name: str = Combo(model_files("checkpoints")),
    strength_model: float = Float(1.0, **STRENGTH),
    prev_hooks: Any = HOOKS,
    *,
    ctx: NodeContext,
) -> Any:
    """Another checkpoint's diffusion model as a hook."""
    return _checkpoint_hook(ckpt_name, strength_model, 0.0, prev_hooks, ctx)


# -- scheduling ------------------------------------------------------------------------------------------------


@node(category="advanced/hooks/scheduling", outputs=["HOOKS"], display_name="Set Hook Keyframes", experimental=True)
def SetHookKeyframes(hooks: Any = Socket("HOOKS"), hook_kf: Any = KEYFRAMES) -> Any:
    """Give every hook of the group this keyframe schedule (replacing any it had)."""
    return hooks.with_keyframes(hook_kf) if hook_kf is not None else hooks


def _keyframes(previous: Any) -> Any:
    from diffusion.hooks import Keyframes

    return previous if previous is not None else Keyframes()


@node(
    category="advanced/hooks/scheduling",
    outputs=[Out("HOOK_KEYFRAMES", "HOOK_KF")],
    display_name="Create Hook Keyframe",
    experimental=True,
)
def CreateHookKeyframe(
    strength_mult: float = Float(1.0, **STRENGTH),
    start_percent: float = Float(0.0, **PERCENT),
    prev_hook_kf: Any = KEYFRAMES,
) -> Any:
    """From `start_percent` of sampling on, multiply the hooks' strengths by `strength_mult`."""
    from diffusion.hooks import Keyframe

    return _keyframes(prev_hook_kf).add(Keyframe(strength_mult, start_percent))


def _spread(
    previous: Any, strengths: Sequence[float], start_percent: float, end_percent: float, show: bool, ctx: NodeContext
) -> Any:
    """Keyframes at evenly spaced starts from start to end; the first guarantees one step, the rest none."""
    from diffusion.hooks import Keyframe, interpolate

    starts = interpolate(start_percent, end_percent, len(strengths), "linear")
    frames = [Keyframe(float(s), p, 1 if i == 0 else 0) for i, (p, s) in enumerate(zip(starts, strengths, strict=True))]
    if show:
        ctx.text("\n".join(f"Hook Keyframe - start_percent:{f.start_percent} = {f.strength}" for f in frames))
    return _keyframes(previous).add(*frames)


@node(
    category="advanced/hooks/scheduling",
    outputs=[Out("HOOK_KEYFRAMES", "HOOK_KF")],
    display_name="Create Hook Keyframes Interp.",
    experimental=True,
)
def CreateHookKeyframesInterpolated(
    strength_start: float = Float(1.0, min=0.0, max=10.0, step=0.001),
    strength_end: float = Float(1.0, min=0.0, max=10.0, step=0.001),
    interpolation: str = Combo(["linear", "ease_in", "ease_out", "ease_in_out"]),
    start_percent: float = Float(0.0, **PERCENT),
    end_percent: float = Float(1.0, **PERCENT),
    keyframes_count: int = Int(5, min=2, max=100, step=1),
    print_keyframes: bool = Boolean(False),
    prev_hook_kf: Any = KEYFRAMES,
    *,
    ctx: NodeContext,
) -> Any:
    """`keyframes_count` keyframes easing the strength from start to end, spread evenly over the percent range."""
    from diffusion.hooks import interpolate

    strengths = interpolate(strength_start, strength_end, keyframes_count, interpolation)
    return _spread(prev_hook_kf, strengths, start_percent, end_percent, print_keyframes, ctx)


@node(
    category="advanced/hooks/scheduling",
    outputs=[Out("HOOK_KEYFRAMES", "HOOK_KF")],
    display_name="Create Hook Keyframes From Floats",
    experimental=True,
)
def CreateHookKeyframesFromFloats(
    floats_strength: Any = Input("FLOATS", -1, force_input=True, options={"min": -1, "step": 0.001}),
    start_percent: float = Float(0.0, **PERCENT),
    end_percent: float = Float(1.0, **PERCENT),
    print_keyframes: bool = Boolean(False),
    prev_hook_kf: Any = KEYFRAMES,
    *,
    ctx: NodeContext,
) -> Any:
    """One keyframe per float (a FLOATS list, or one number), spread evenly over the percent range."""
    if isinstance(floats_strength, bool):
        raise ValueError("floats_strength: expected a number or a list of numbers, got a boolean")
    if isinstance(floats_strength, int | float):
        strengths = [float(floats_strength)]
    else:
        try:
            strengths = [float(v) for v in floats_strength]
        except (TypeError, ValueError) as exc:
            kind = type(floats_strength).__name__
            raise ValueError(f"floats_strength: expected a number or a list of numbers, got {kind}") from exc
    if not strengths:
        raise ValueError("floats_strength: the list is empty")
    return _spread(prev_hook_kf, strengths, start_percent, end_percent, print_keyframes, ctx)


# -- combining hooks -------------------------------------------------------------------------------------------


def _combined(*groups: Any) -> Any:
    from diffusion.hooks import combine_groups

    return combine_groups(groups)


@node(
    name="CombineHooks2",
    category="advanced/hooks/combine",
    outputs=["HOOKS"],
    display_name="Combine Hooks [2]",
    experimental=True,
)
def CombineHooks(hooks_A: Any = HOOKS, hooks_B: Any = HOOKS) -> Any:
    """Every hook of the given groups, each once (nothing when none is given)."""
    return _combined(hooks_A, hooks_B)


@node(
    name="CombineHooks4",
    category="advanced/hooks/combine",
    outputs=["HOOKS"],
    display_name="Combine Hooks [4]",
    experimental=True,
)
def CombineHooksFour(hooks_A: Any = HOOKS, hooks_B: Any = HOOKS, hooks_C: Any = HOOKS, hooks_D: Any = HOOKS) -> Any:
    """Every hook of the given groups, each once (nothing when none is given)."""
    return _combined(hooks_A, hooks_B, hooks_C, hooks_D)


@node(
    name="CombineHooks8",
    category="advanced/hooks/combine",
    outputs=["HOOKS"],
    display_name="Combine Hooks [8]",
    experimental=True,
)
def CombineHooksEight(
    hooks_A: Any = HOOKS,
    hooks_B: Any = HOOKS,
    hooks_C: Any = HOOKS,
    hooks_D: Any = HOOKS,
    hooks_E: Any = HOOKS,
    hooks_F: Any = HOOKS,
    hooks_G: Any = HOOKS,
    hooks_H: Any = HOOKS,
) -> Any:
    """Every hook of the given groups, each once (nothing when none is given)."""
    return _combined(hooks_A, hooks_B, hooks_C, hooks_D, hooks_E, hooks_F, hooks_G, hooks_H)


# -- attaching hooks and properties to conditioning ------------------------------------------------------------


def with_hooks(conditioning: Conditioning, hooks: Any) -> Conditioning:
    """Each entry with `hooks` added to the ones it carries."""
    if hooks is None:
        return list(conditioning)
    out = []
    for tensor, extras in conditioning:
        held = extras.get("hooks")
        out.append([tensor, {**extras, "hooks": held.combine(hooks) if held is not None else hooks}])
    return out


def with_properties(
    conditioning: Conditioning, strength: float, set_cond_area: str, mask: Any, hooks: Any, timesteps: Any
) -> Conditioning:
    """Hooks, then a mask (weighted by `strength`, which only a mask uses), then a timestep range."""
    out = with_hooks(conditioning, hooks)
    if mask is not None:
        mask = mask.unsqueeze(0) if mask.dim() < 3 else mask
        out = with_values(out, mask=mask, set_area_to_bounds=set_cond_area != "default", mask_strength=strength)
    if timesteps is not None:
        out = with_values(out, start_percent=timesteps[0], end_percent=timesteps[1])
    return out


def as_default(conditioning: Conditioning, hooks: Any) -> Conditioning:
    """Entries that fill in where the others of their conditioning leave the frame uncovered."""
    return with_values(with_hooks(conditioning, hooks), default=True)


@node(
    category="advanced/hooks/cond single",
    outputs=["CONDITIONING"],
    display_name="Cond Set Props",
    experimental=True,
)
def ConditioningSetProperties(
    cond_NEW: Any = COND,
    strength: float = Float(1.0, **PROPS_STRENGTH),
    set_cond_area: str = Combo(AREAS),
    mask: Any = MASK,
    hooks: Any = HOOKS,
    timesteps: Any = TIMESTEPS,
) -> Any:
    """Attach hooks, a mask and a timestep range to every entry."""
    return with_properties(cond_NEW, strength, set_cond_area, mask, hooks, timesteps)


@node(
    category="advanced/hooks/cond single",
    outputs=["CONDITIONING"],
    display_name="Cond Set Props Combine",
    experimental=True,
)
def ConditioningSetPropertiesAndCombine(
    cond: Any = COND,
    cond_NEW: Any = COND,
    strength: float = Float(1.0, **PROPS_STRENGTH),
    set_cond_area: str = Combo(AREAS),
    mask: Any = MASK,
    hooks: Any = HOOKS,
    timesteps: Any = TIMESTEPS,
) -> Any:
    """`cond` followed by `cond_NEW` with the hooks, mask and timestep range attached."""
    return list(cond) + with_properties(cond_NEW, strength, set_cond_area, mask, hooks, timesteps)


@node(
    category="advanced/hooks/cond pair",
    outputs=PAIR,
    display_name="Cond Pair Set Props",
    experimental=True,
)
def PairConditioningSetProperties(
    positive_NEW: Any = COND,
    negative_NEW: Any = COND,
    strength: float = Float(1.0, **PROPS_STRENGTH),
    set_cond_area: str = Combo(AREAS),
    mask: Any = MASK,
    hooks: Any = HOOKS,
    timesteps: Any = TIMESTEPS,
) -> tuple:
    """ConditioningSetProperties on a positive and a negative at once."""
    return tuple(
        with_properties(c, strength, set_cond_area, mask, hooks, timesteps) for c in (positive_NEW, negative_NEW)
    )


@node(
    category="advanced/hooks/cond pair",
    outputs=PAIR,
    display_name="Cond Pair Set Props Combine",
    experimental=True,
)
def PairConditioningSetPropertiesAndCombine(
    positive: Any = COND,
    negative: Any = COND,
    positive_NEW: Any = COND,
    negative_NEW: Any = COND,
    strength: float = Float(1.0, **PROPS_STRENGTH),
    set_cond_area: str = Combo(AREAS),
    mask: Any = MASK,
    hooks: Any = HOOKS,
    timesteps: Any = TIMESTEPS,
) -> tuple:
    """ConditioningSetPropertiesAndCombine on a positive and a negative at once."""
    return tuple(
        list(old) + with_properties(new, strength, set_cond_area, mask, hooks, timesteps)
        for old, new in ((positive, positive_NEW), (negative, negative_NEW))
    )


@node(category="advanced/hooks/cond pair", outputs=PAIR, display_name="Cond Pair Combine", experimental=True)
def PairConditioningCombine(
    positive_A: Any = COND, negative_A: Any = COND, positive_B: Any = COND, negative_B: Any = COND
) -> tuple:
    """The A entries followed by the B entries, for the positive and the negative."""
    return list(positive_A) + list(positive_B), list(negative_A) + list(negative_B)


@node(
    name="PairConditioningSetDefaultCombine",
    category="advanced/hooks/cond pair",
    outputs=PAIR,
    display_name="Cond Pair Set Default Combine",
    experimental=True,
)
def PairConditioningSetDefaultAndCombine(
    positive: Any = COND,
    negative: Any = COND,
    positive_DEFAULT: Any = COND,
    negative_DEFAULT: Any = COND,
    hooks: Any = HOOKS,
) -> tuple:
    """Add the DEFAULT entries (with the hooks) as what the sampler uses where the others do not cover."""
    return list(positive) + as_default(positive_DEFAULT, hooks), list(negative) + as_default(negative_DEFAULT, hooks)


@node(
    name="ConditioningSetDefaultCombine",
    category="advanced/hooks/cond single",
    outputs=["CONDITIONING"],
    display_name="Cond Set Default Combine",
    experimental=True,
)
def ConditioningSetDefaultAndCombine(cond: Any = COND, cond_DEFAULT: Any = COND, hooks: Any = HOOKS) -> Any:
    """Add the DEFAULT entries (with the hooks) as what the sampler uses where the others do not cover."""
    return list(cond) + as_default(cond_DEFAULT, hooks)


@node(category="advanced/hooks/clip", outputs=["CLIP"], display_name="Set CLIP Hooks", experimental=True)
def SetClipHooks(
    clip: Any = Socket("CLIP"),
    apply_to_conds: bool = Boolean(True),
    schedule_clip: bool = Boolean(False),
    hooks: Any = HOOKS,
) -> Any:
    """Encode with the hooks' CLIP weights (following their keyframes when `schedule_clip`); with
    `apply_to_conds` the encoded conditioning carries the hooks into sampling too."""
    from dataclasses import replace

    from diffusion.hooks import ClipHooks
    from diffusion.text_encoder import TextEncoder

    if hooks is None:
        return clip
    if not isinstance(clip, TextEncoder):
        raise ValueError(f"clip: SetClipHooks patches SD 1.x/2.x/SDXL CLIP encoders; this is a {type(clip).__name__}")
    return replace(clip, hooks=ClipHooks(hooks, apply_to_conds, schedule_clip), view=True)
