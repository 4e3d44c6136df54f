import math

import pytest
import torch
from torch import nn

from diffusion.guidance import CFG
from diffusion.hooks import (
    CheckpointWeights,
    HookedModels,
    HookGroup,
    HookKey,
    Keyframe,
    KeyframeCursor,
    Keyframes,
    LoraWeights,
    WeightHook,
    clip_schedule,
    combine_groups,
    interpolate,
    patch_components,
)
from diffusion.lora import apply_patches, match_lora
from diffusion.sampling import Guided, SampleRequest, SamplingError, sample
from tests.diffusion.tiny_sampling import sample_request


def _lora(unet: nn.Module, seed: int = 5, scale: float = 0.2) -> dict[str, torch.Tensor]:
    """A diffusers-named kohya LoRA touching every linear and conv layer of `unet`."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for name, layer in unet.named_modules():
        if isinstance(layer, nn.Linear | nn.Conv2d):
            out_dim, in_dim = layer.weight.shape[:2]
            kernel = tuple(layer.weight.shape[2:])
            stem = "lora_unet_" + name.replace(".", "_")
            sd[stem + ".lora_down.weight"] = torch.randn(2, in_dim, *kernel, generator=gen) * scale
            sd[stem + ".lora_up.weight"] = torch.randn(out_dim, 2, *((1,) * len(kernel)), generator=gen) * scale
    return sd


def _group(tensors, strength_model: float = 1.0, keyframes: Keyframes = Keyframes()) -> HookGroup:
    return HookGroup((WeightHook(LoraWeights("style", tensors), strength_model, 1.0, keyframes),))


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


# -- keyframes and schedules -------------------------------------------------------------------------------------


def test_interpolation_curves() -> None:
    assert interpolate(0.0, 1.0, 5, "linear") == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    assert interpolate(0.0, 1.0, 5, "ease_in") == pytest.approx([0, 0.0625, 0.25, 0.5625, 1])
    assert interpolate(0.0, 1.0, 5, "ease_out") == pytest.approx([0, 0.4375, 0.75, 0.9375, 1])
    half = (1 - math.cos(math.pi / 4)) / 2
    assert interpolate(2.0, 0.0, 5, "ease_in_out") == pytest.approx([2, 2 - 2 * half, 1, 2 * half, 0])
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'"):
        interpolate(0.0, 1.0, 3, "cubic")


def test_keyframes_sort_stably_and_hold_the_first_from_the_start() -> None:
    kf = Keyframes().add(Keyframe(0.5, 0.6)).add(Keyframe(2.0, 0.3), Keyframe(3.0, 0.6))
    assert [f.strength for f in kf.frames] == [2.0, 0.5, 3.0]
    assert [kf.strength_at(p) for p in (0.0, 0.3, 0.59, 0.6, 1.0)] == [2.0, 2.0, 2.0, 3.0, 3.0]
    assert Keyframes().strength_at(0.5) == 1.0


def _cursor(kf: Keyframes, sigma_max: float) -> KeyframeCursor:
    # a toy schedule: sigma = 1 - percent, and "before everything" for percent 0, as the models' schedules do
    return KeyframeCursor(kf, lambda p: 1e9 if p <= 0 else 1 - p, sigma_max)


def test_cursor_switches_at_the_start_sigma_and_honours_guaranteed_steps() -> None:
    kf = Keyframes().add(Keyframe(1.0, 0.0), Keyframe(2.0, 0.3), Keyframe(3.0, 0.35))
    cursor = _cursor(kf, sigma_max=1.0)
    # percent 0.5 reaches both later keyframes, but the first one to take over holds its guaranteed step
    assert [cursor.strength(s) for s in (1.0, 1.0, 0.5, 0.4, 0.1)] == [1.0, 1.0, 2.0, 3.0, 3.0]
    empty = _cursor(Keyframes(), sigma_max=1.0)
    assert empty.strength(0.5) == 1.0


def test_cursor_skips_keyframes_that_start_before_the_run() -> None:
    kf = Keyframes().add(Keyframe(1.0, 0.0), Keyframe(2.0, 0.1), Keyframe(3.0, 0.2), Keyframe(4.0, 0.9))
    cursor = _cursor(kf, sigma_max=0.5)  # an img2img run starting half-way
    assert [cursor.strength(s) for s in (0.5, 0.3, 0.05)] == [3.0, 3.0, 4.0]


def test_groups_combine_each_hook_once_and_keep_identity_across_keyframes() -> None:
    a, b = _group({}), _group({})
    both = a.combine(b, a, None)
    assert len(both.hooks) == 2
    scheduled = both.with_keyframes(Keyframes().add(Keyframe(0.5)))
    assert [h.identity for h in scheduled.hooks] == [h.identity for h in both.hooks]
    assert len(scheduled.combine(both).hooks) == 2
    assert combine_groups([None, None]) is None
    assert combine_groups([None, a]) == a
    weights = HookGroup((WeightHook(LoraWeights("w", {"x": torch.zeros(4, 2)}), 1.0, 1.0),))
    assert weights.combine(weights.with_keyframes(Keyframes().add(Keyframe(0.5)))).loom_nbytes() == 32


def test_clip_schedule_ranges() -> None:
    kf = Keyframes().add(Keyframe(1.0, 0.0), Keyframe(1.0, 0.2), Keyframe(0.5, 0.5))
    hooks = HookGroup(
        (
            WeightHook(LoraWeights("a", {}), 1.0, 2.0, kf),
            WeightHook(LoraWeights("b", {}), 1.0, 1.0, Keyframes().add(Keyframe(0.0, 0.8))),
        )
    )
    assert clip_schedule(hooks, scheduled=False) == [(0.0, 1.0, [2.0, 1.0])]
    assert clip_schedule(hooks, scheduled=True) == [(0.0, 0.5, [2.0, 0.0]), (0.5, 1.0, [1.0, 0.0])]


# -- patching without touching the base --------------------------------------------------------------------------


def test_model_as_lora_moves_weights_towards_the_other_model() -> None:
    from tests.diffusion.tiny_lora_models import tiny_unet

    base, other = tiny_unet(0), tiny_unet(1)
    before = _state(base)
    source = CheckpointWeights("other", {"unet": dict(other.named_parameters())})
    hook = WeightHook(source, 1.0, 1.0)
    half = patch_components({"unet": base}, [(hook, 0.5)])["unet"]
    name = "conv_in.weight"
    expected = base.conv_in.weight + 0.5 * (other.conv_in.weight - base.conv_in.weight)
    assert torch.allclose(dict(half.named_parameters())[name], expected, atol=1e-6)
    assert all(torch.equal(v, before[k]) for k, v in base.state_dict().items())
    assert patch_components({"unet": base}, [(hook, 0.0)])["unet"] is base


# -- sampling with hooked conditioning ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cond(sd1):
    p, n = sd1.clip.encode("a cat"), sd1.clip.encode("")
    return [[p.cond, {"pooled_output": p.pooled}]], [[n.cond, {"pooled_output": n.pooled}]]


@pytest.fixture(scope="module")
def lora(sd1) -> dict[str, torch.Tensor]:
    return _lora(sd1.model.unet)


def _hooked(conditioning, hooks: HookGroup):
    return [[t, {**extras, "hooks": hooks}] for t, extras in conditioning]


def _request(model, positive, negative, **overrides) -> SampleRequest:
    return sample_request(model, positive, negative, **({"steps": 5} | overrides))


def test_a_hook_at_strength_zero_is_no_hook(sd1, cond, lora) -> None:
    pos, neg = cond
    plain = sample(_request(sd1.model, pos, neg))["samples"]
    zero = sample(_request(sd1.model, _hooked(pos, _group(lora, 0.0)), neg))["samples"]
    keyed_off = _group(lora, 1.0, Keyframes().add(Keyframe(0.0)))
    off = sample(_request(sd1.model, _hooked(pos, keyed_off), neg))["samples"]
    assert torch.equal(plain, zero) and torch.equal(plain, off)


def test_hooked_conditioning_equals_the_lora_loaded_model_and_leaves_the_base_alone(sd1, cond, lora) -> None:
    pos, neg = cond
    unet = sd1.model.unet
    before = _state(unet)
    plain = sample(_request(sd1.model, pos, neg))["samples"]
    hooks = _group(lora, 0.8, Keyframes().add(Keyframe(1.0)))
    hooked = sample(_request(sd1.model, _hooked(pos, hooks), _hooked(neg, hooks)))["samples"]
    patched = apply_patches({"unet": unet}, match_lora(lora, {"unet": unet}).patches, {"unet": 0.8})["unet"]
    loaded = sample(_request(sd1.model.with_unet(patched), pos, neg))["samples"]
    assert torch.equal(hooked, loaded) and not torch.equal(hooked, plain)
    # only the positive hooked, at cfg 1 (the negative is skipped): the positive is the only entry
    alone = sample(_request(sd1.model, _hooked(pos, hooks), neg, cfg=1.0))["samples"]
    assert torch.equal(alone, sample(_request(sd1.model.with_unet(patched), pos, neg, cfg=1.0))["samples"])
    assert all(torch.equal(v, before[k]) for k, v in unet.state_dict().items())
    assert torch.equal(sample(_request(sd1.model, pos, neg))["samples"], plain)


def test_a_keyframe_switching_at_half_changes_only_the_later_steps(sd1, cond, lora) -> None:
    pos, neg = cond

    def estimates(positive) -> list[torch.Tensor]:
        seen: list[torch.Tensor] = []
        sample(_request(sd1.model, positive, neg), lambda _i, _n, x0: seen.append(x0.clone()))
        return seen

    always = estimates(_hooked(pos, _group(lora)))
    switch = Keyframes().add(Keyframe(1.0, 0.0), Keyframe(0.0, 0.5))
    switched = estimates(_hooked(pos, _group(lora, 1.0, switch)))
    # 5 "normal" steps sit at 0, 25, 50, 75 and 100% of the schedule: the keyframe at 50% takes over on the third
    assert len(always) == 5
    assert all(torch.equal(a, b) for a, b in zip(always[:2], switched[:2], strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(always[2:], switched[2:], strict=True))


def test_entries_with_different_hooks_are_predicted_apart(sd1, cond, lora) -> None:
    pos, neg = cond
    other = _lora(sd1.model.unet, seed=9)
    a, b = _group(lora), _group(other)
    each = sample(_request(sd1.model, _hooked(pos, a) + _hooked(pos, b), neg, cfg=1.0))["samples"]
    both = sample(_request(sd1.model, _hooked(pos, a.combine(b)), neg, cfg=1.0))["samples"]
    only_a = sample(_request(sd1.model, _hooked(pos, a), neg, cfg=1.0))["samples"]
    assert not torch.equal(each, both) and not torch.equal(each, only_a)


def test_default_entries_fill_only_what_the_others_leave(sd1, cond, lora) -> None:
    pos, neg = cond
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([2.0])
    mask = torch.zeros(1, 8, 8)
    mask[..., :4] = 1.0
    other = sd1.clip.encode("a dog")
    default = [[other.cond, {"pooled_output": other.pooled, "default": True}]]

    def estimate(positive) -> torch.Tensor:
        return Guided(sd1.model, (("positive", positive), ("negative", neg)), CFG(1.0), x, torch.device("cpu"))(
            x, sigma
        )

    hooked = _hooked(pos, _group(lora))
    masked = [[t, {**e, "mask": mask}] for t, e in hooked]
    mixed = estimate(masked + default)
    left, right = estimate(hooked), estimate([[other.cond, {"pooled_output": other.pooled}]])
    assert torch.allclose(mixed[..., :4], left[..., :4], atol=1e-6)
    assert torch.allclose(mixed[..., 4:], right[..., 4:], atol=1e-6)
    assert torch.equal(estimate(pos + default), estimate(pos))  # the frame is covered: the default is unused


def test_clip_ranges_limit_an_entry_like_a_timestep_range(sd1, cond) -> None:
    pos, neg = cond
    early = [[t, {**e, "clip_start_percent": 0.0, "clip_end_percent": 0.3}] for t, e in pos]
    ranged = [[t, {**e, "start_percent": 0.0, "end_percent": 0.3}] for t, e in pos]
    other = sd1.clip.encode("a dog")
    rest = [[other.cond, {"pooled_output": other.pooled}]]
    a = sample(_request(sd1.model, early + rest, neg))["samples"]
    b = sample(_request(sd1.model, ranged + rest, neg))["samples"]
    assert torch.equal(a, b)


def test_a_foreign_hooks_value_or_a_misfit_hook_is_a_clear_error(sd1, cond) -> None:
    pos, neg = cond
    foreign = [[t, {**e, "hooks": object()}] for t, e in pos]
    with pytest.raises(SamplingError, match="not a HOOKS value"):
        sample(_request(sd1.model, foreign, neg))
    misfit = _group({"lora_te_text_model_nothing.lora_down.weight": torch.zeros(2, 2)})
    with pytest.raises(SamplingError, match="no weight fits"):
        sample(_request(sd1.model, _hooked(pos, misfit), neg))


def test_hooked_models_patch_once_per_strength(sd1, lora) -> None:
    models = HookedModels(sd1.model, sigma_max=10.0)
    group = _group(lora, 1.0, Keyframes().add(Keyframe(1.0, 0.0), Keyframe(0.5, 0.5)))
    first: HookKey = models.key(group, 10.0)
    assert models.model(first) is models.model(models.key(group, 9.0))
    later = models.key(group, 0.1)
    assert later != first and models.model(later) is not models.model(first)
    assert models.model(()) is sd1.model
