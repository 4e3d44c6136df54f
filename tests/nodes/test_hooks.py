import copy
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from diffusion.hooks import HookGroup, Keyframe, Keyframes, LoraWeights, WeightHook
from engine.events import NodeText
from tests.nodes.conftest import Run, Runner

COND = [[torch.ones(1, 3, 4), {"pooled_output": torch.ones(1, 4)}]]
NEG = [[torch.zeros(1, 3, 4), {"pooled_output": torch.zeros(1, 4)}]]


def _hook(name: str = "a") -> HookGroup:
    return HookGroup((WeightHook(LoraWeights(name, {}), 1.0, 1.0),))


# -- keyframes ---------------------------------------------------------------------------------------------------


def test_keyframe_nodes_build_sorted_schedules(run: Run) -> None:
    first = run("CreateHookKeyframe", strength_mult=0.5, start_percent=0.6)
    both = run("CreateHookKeyframe", strength_mult=2.0, start_percent=0.2, prev_hook_kf=first)
    assert first == Keyframes((Keyframe(0.5, 0.6),))
    assert both == Keyframes((Keyframe(2.0, 0.2), Keyframe(0.5, 0.6)))


def test_interpolated_keyframes_ease_over_the_range(registry: Any, env: Any) -> None:
    runner = Runner(registry, env)
    kf = runner(
        "CreateHookKeyframesInterpolated",
        strength_start=0.0,
        strength_end=1.0,
        interpolation="ease_in",
        start_percent=0.2,
        end_percent=0.6,
        keyframes_count=3,
        print_keyframes=True,
    )
    assert [f.start_percent for f in kf.frames] == pytest.approx([0.2, 0.4, 0.6])
    assert [f.strength for f in kf.frames] == pytest.approx([0.0, 0.25, 1.0])
    assert [f.guarantee_steps for f in kf.frames] == [1, 0, 0]
    texts = [e.text for e in runner.events if isinstance(e, NodeText)]
    assert len(texts) == 1 and texts[0].count("Hook Keyframe - start_percent:") == 3


def test_keyframes_from_floats(run: Run) -> None:
    kf = run("CreateHookKeyframesFromFloats", floats_strength=[0.2, 0.4, 0.8], start_percent=0.1, end_percent=0.5)
    assert [f.start_percent for f in kf.frames] == pytest.approx([0.1, 0.3, 0.5])
    assert [f.strength for f in kf.frames] == pytest.approx([0.2, 0.4, 0.8])
    one = run("CreateHookKeyframesFromFloats", floats_strength=3, start_percent=0.5, end_percent=1.0, prev_hook_kf=kf)
    assert one.frames[-1] == Keyframe(3.0, 0.5, 1) and len(one.frames) == 4
    with pytest.raises(ValueError, match="floats_strength"):
        run("CreateHookKeyframesFromFloats", floats_strength="fast", start_percent=0.0, end_percent=1.0)
    with pytest.raises(ValueError, match="empty"):
        run("CreateHookKeyframesFromFloats", floats_strength=[], start_percent=0.0, end_percent=1.0)


def test_set_hook_keyframes_replaces_every_hooks_schedule(run: Run) -> None:
    hooks = _hook().combine(_hook("b"))
    kf = Keyframes((Keyframe(0.5, 0.3),))
    scheduled = run("SetHookKeyframes", hooks=hooks, hook_kf=kf)
    assert [h.keyframes for h in scheduled.hooks] == [kf, kf]
    assert all(h.keyframes == Keyframes() for h in hooks.hooks)
    assert run("SetHookKeyframes", hooks=hooks) is hooks


# -- combining and attaching ---------------------------------------------------------------------------------------


def test_combine_nodes_take_each_hook_once(run: Run) -> None:
    a, b, c = _hook("a"), _hook("b"), _hook("c")
    assert run("CombineHooks2") is None
    assert run("CombineHooks2", hooks_B=a) == a
    four = run("CombineHooks4", hooks_A=a, hooks_B=b, hooks_D=a)
    assert four.hooks == a.hooks + b.hooks
    eight = run("CombineHooks8", hooks_C=c, hooks_H=four)
    assert eight.hooks == c.hooks + a.hooks + b.hooks


def test_set_properties_attach_hooks_mask_and_range_without_touching_the_input(run: Run) -> None:
    a, b = _hook("a"), _hook("b")
    held = [[COND[0][0], {**COND[0][1], "hooks": a}]]
    snapshot = copy.deepcopy(held[0][1]["pooled_output"])
    out = run(
        "ConditioningSetProperties",
        cond_NEW=held,
        strength=0.7,
        set_cond_area="mask bounds",
        mask=torch.ones(4, 4),
        hooks=b,
        timesteps=(0.2, 0.6),
    )
    extras = out[0][1]
    assert extras["hooks"].hooks == a.hooks + b.hooks and held[0][1]["hooks"] is a
    assert extras["mask"].shape == (1, 4, 4) and extras["mask_strength"] == 0.7 and extras["set_area_to_bounds"]
    assert (extras["start_percent"], extras["end_percent"]) == (0.2, 0.6)
    assert torch.equal(held[0][1]["pooled_output"], snapshot) and "mask" not in held[0][1]
    plain = run("ConditioningSetProperties", cond_NEW=COND, strength=0.7, set_cond_area="default")
    assert plain[0][1].keys() == COND[0][1].keys()  # strength weighs a mask only, as the reference's does
    combined = run(
        "ConditioningSetPropertiesAndCombine", cond=COND, cond_NEW=NEG, strength=1.0, set_cond_area="default", hooks=a
    )
    assert len(combined) == 2 and "hooks" not in combined[0][1] and combined[1][1]["hooks"] is a


def test_pair_nodes(run: Run) -> None:
    a = _hook()
    pos, neg = run(
        "PairConditioningSetProperties",
        positive_NEW=COND,
        negative_NEW=NEG,
        strength=1.0,
        set_cond_area="default",
        hooks=a,
    )
    assert pos[0][1]["hooks"] is a and neg[0][1]["hooks"] is a and torch.equal(neg[0][0], NEG[0][0])
    pos, neg = run(
        "PairConditioningSetPropertiesAndCombine",
        positive=COND,
        negative=NEG,
        positive_NEW=NEG,
        negative_NEW=COND,
        strength=1.0,
        set_cond_area="default",
        timesteps=(0.0, 0.5),
    )
    assert [e[1].get("end_percent") for e in pos] == [None, 0.5] and torch.equal(pos[1][0], NEG[0][0])
    assert [e[1].get("end_percent") for e in neg] == [None, 0.5] and torch.equal(neg[1][0], COND[0][0])
    pos, neg = run("PairConditioningCombine", positive_A=COND, negative_A=NEG, positive_B=NEG, negative_B=COND)
    assert [torch.equal(e[0], COND[0][0]) for e in pos] == [True, False]
    assert [torch.equal(e[0], NEG[0][0]) for e in neg] == [True, False]


def test_default_nodes_mark_the_added_entries(run: Run) -> None:
    a = _hook()
    (single,) = (run("ConditioningSetDefaultCombine", cond=COND, cond_DEFAULT=NEG, hooks=a),)
    assert "default" not in single[0][1] and single[1][1]["default"] is True and single[1][1]["hooks"] is a
    pos, neg = run(
        "PairConditioningSetDefaultCombine", positive=COND, negative=NEG, positive_DEFAULT=NEG, negative_DEFAULT=COND
    )
    assert [e[1].get("default") for e in pos] == [None, True] and [e[1].get("default") for e in neg] == [None, True]
    assert "hooks" not in pos[1][1]


# -- hooks from files ----------------------------------------------------------------------------------------------


def test_create_hook_lora_reads_the_file_and_stacks(run: Run, env: Any) -> None:
    save_file({"lora_unet_x.lora_down.weight": torch.ones(2, 3)}, env.folders.model_dirs("loras")[0] / "s.safetensors")
    first = run("CreateHookLora", lora_name="s.safetensors", strength_model=0.5, strength_clip=0.0)
    (hook,) = first.hooks
    assert (hook.strength_model, hook.strength_clip, hook.source.name) == (0.5, 0.0, "s.safetensors")
    assert set(hook.source.tensors) == {"lora_unet_x.lora_down.weight"}
    stacked = run("CreateHookLoraModelOnly", lora_name="s.safetensors", strength_model=1.0, prev_hooks=first)
    assert len(stacked.hooks) == 2 and stacked.hooks[1].strength_clip == 0.0
    assert run("CreateHookLora", lora_name="gone.safetensors", strength_model=0.0, strength_clip=0.0) == HookGroup()
    with pytest.raises(FileNotFoundError, match="lora_name"):
        run("CreateHookLora", lora_name="gone.safetensors", strength_model=1.0, strength_clip=1.0)


def test_set_clip_hooks_needs_an_sd_clip(run: Run) -> None:
    class OtherClip:
        pass

    clip = OtherClip()
    assert run("SetClipHooks", clip=clip, apply_to_conds=True, schedule_clip=False) is clip
    with pytest.raises(ValueError, match="OtherClip"):
        run("SetClipHooks", clip=clip, apply_to_conds=True, schedule_clip=False, hooks=_hook())


# -- workflows through the executor --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from diffusion.tiny import build_tiny, tiny_spec, write_checkpoint
    from tests.nodes.tiny_flows import Flows, kohya_lora

    flows = Flows.create(tmp_path_factory.mktemp("loom"))
    save_file(kohya_lora(flows.modules, 1), flows.folder("loras") / "a.safetensors")
    write_checkpoint(flows.folder("checkpoints") / "other.safetensors", build_tiny(tiny_spec("sd1"), seed=8))
    return flows


def _hooked_flow(
    hooks: dict[str, dict[str, Any]], hooks_out: str, clip_hooks: dict[str, Any] | None = None, prefix: str = "hooked"
) -> dict[str, Any]:
    """txt2img with `hooks` nodes added; the prompts get the hooks through PairConditioningSetProperties, or,
    with `clip_hooks` (SetClipHooks' widgets), through the CLIP that encodes them."""
    from tests.nodes.tiny_flows import LOADER, SAMPLER, txt2img

    flow = txt2img(prefix=prefix) | hooks
    if clip_hooks is not None:
        flow["clip"] = {
            "class_type": "SetClipHooks",
            "inputs": {"clip": [LOADER, 1], "hooks": [hooks_out, 0]} | clip_hooks,
        }
        for prompt in ("3", "4"):
            flow[prompt]["inputs"]["clip"] = ["clip", 0]
        return flow
    flow["props"] = {
        "class_type": "PairConditioningSetProperties",
        "inputs": {
            "positive_NEW": ["3", 0],
            "negative_NEW": ["4", 0],
            "strength": 1.0,
            "set_cond_area": "default",
            "hooks": [hooks_out, 0],
        },
    }
    flow[SAMPLER]["inputs"] |= {"positive": ["props", 0], "negative": ["props", 1]}
    return flow


LORA_HOOK = {
    "hook": {
        "class_type": "CreateHookLora",
        "inputs": {"lora_name": "a.safetensors", "strength_model": 1.0, "strength_clip": 1.0},
    },
    "kf": {"class_type": "CreateHookKeyframe", "inputs": {"strength_mult": 1.0, "start_percent": 0.0}},
    "keyed": {"class_type": "SetHookKeyframes", "inputs": {"hooks": ["hook", 0], "hook_kf": ["kf", 0]}},
}


def test_hooked_prompts_sample_like_the_lora_loaded_model(flows: Any) -> None:
    from tests.nodes.tiny_flows import txt2img

    base = flows.run(txt2img(prefix="base")).latent
    hooked = flows.run(_hooked_flow(LORA_HOOK, "keyed"))
    model_only = flows.run(txt2img(loras=(("a.safetensors", 1.0, 0.0),), prefix="model_only")).latent
    assert torch.equal(hooked.latent, model_only) and not torch.equal(hooked.latent, base)
    # through the CLIP: the prompts are encoded with the LoRA and carry the hooks into sampling
    clip_flow = _hooked_flow(LORA_HOOK, "keyed", {"apply_to_conds": True, "schedule_clip": False}, prefix="clip")
    through_clip = flows.run(clip_flow).latent
    both = flows.run(txt2img(loras=(("a.safetensors", 1.0, 1.0),), prefix="both")).latent
    assert torch.equal(through_clip, both)
    assert torch.equal(flows.run(txt2img(prefix="again")).latent, base)  # the cached base model is untouched


def test_scheduled_clip_hooks_encode_once_per_range(flows: Any) -> None:
    call = Runner(flows.registry, flows.env)
    _model, clip, _vae = call("CheckpointLoaderSimple", ckpt_name="tiny-sd1.safetensors")
    lora = call("CreateHookLora", lora_name="a.safetensors", strength_model=1.0, strength_clip=1.0)
    kf = call("CreateHookKeyframe", strength_mult=0.0, start_percent=0.5, prev_hook_kf=Keyframes((Keyframe(1.0),)))
    hooks = call("SetHookKeyframes", hooks=lora, hook_kf=kf)
    scheduled = call("SetClipHooks", clip=clip, apply_to_conds=False, schedule_clip=True, hooks=hooks)
    entries = call("CLIPTextEncode", text="a red fox", clip=scheduled)
    plain = call("CLIPTextEncode", text="a red fox", clip=clip)
    # two ranges, the second at strength 0 (the plain encoding); apply_to_conds off: no hooks attached
    assert [(e[1]["clip_start_percent"], e[1]["clip_end_percent"]) for e in entries] == [(0.0, 0.5), (0.5, 1.0)]
    assert all("hooks" not in e[1] for e in entries)
    assert torch.equal(entries[1][0], plain[0][0]) and not torch.equal(entries[0][0], plain[0][0])
    unscheduled = call("SetClipHooks", clip=clip, apply_to_conds=True, schedule_clip=False, hooks=hooks)
    (entry,) = call("CLIPTextEncode", text="a red fox", clip=unscheduled)
    assert entry[1]["hooks"] is hooks and "clip_start_percent" not in entry[1]
    assert torch.equal(entry[0], entries[0][0])  # keyframes ignored: strength_clip throughout
    flow = _hooked_flow(LORA_HOOK, "keyed", {"apply_to_conds": True, "schedule_clip": True}, prefix="sched")
    assert flows.run(flow).latent is not None


def test_model_as_lora_hook_samples_like_the_other_checkpoint(flows: Any) -> None:
    from tests.nodes.tiny_flows import SAMPLER, txt2img

    hooks = {
        "mal": {
            "class_type": "CreateHookModelAsLoraModelOnly",
            "inputs": {"ckpt_name": "other.safetensors", "strength_model": 1.0},
        }
    }
    hooked = flows.run(_hooked_flow(hooks, "mal", prefix="mal")).latent
    other = txt2img(prefix="other")
    other["other"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "other.safetensors"}}
    other[SAMPLER]["inputs"]["model"] = ["other", 0]
    direct = flows.run(other).latent
    base = flows.run(txt2img(prefix="base2")).latent
    gap = float((hooked - direct).norm() / (base - direct).norm())
    assert gap < 1e-4  # W + (W_other - W) is W_other up to float rounding
