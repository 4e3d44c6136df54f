"""The SD3 nodes on the demo stand-ins: CLIPLoader / DualCLIPLoader / TripleCLIPLoader, CLIPTextEncodeSD3's shapes
and empty_padding, and skip-layer guidance's parsing and warnings."""

from __future__ import annotations

import pytest
import torch

import nodes
from diffusion.demo_dit import (
    DEMO_CLIP_G,
    DEMO_CLIP_L,
    DEMO_FLUX,
    DEMO_SD3,
    DEMO_T5,
    DIT_DEMO_MODELS,
    write_dit_demo_model,
)
from engine.environment import NodeEnvironment
from engine.folders import Folders
from engine.registry import NodeRegistry
from nodes.shared import node_environment
from tests.nodes.conftest import Runner

CLIPS = {"clip_name1": DEMO_CLIP_L, "clip_name2": DEMO_CLIP_G, "clip_name3": DEMO_T5}


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    folders = Folders.under(tmp_path_factory.mktemp("loom"))
    folders.ensure()
    for model in DIT_DEMO_MODELS:
        write_dit_demo_model(model, folders.model_dirs(model.folder)[0])
    env: NodeEnvironment = node_environment(folders, force_cpu=True)
    registry = NodeRegistry(env)
    nodes.register_builtin(registry)
    return Runner(registry, env)


@pytest.fixture(scope="module")
def triple(runner: Runner):
    return runner("TripleCLIPLoader", **CLIPS)


def encode_sd3(runner: Runner, clip, padding: str = "none", **texts: str) -> tuple[torch.Tensor, torch.Tensor]:
    prompts = {"clip_l": "a fox", "clip_g": "a fox", "t5xxl": "a fox"} | texts
    [[cond, opts]] = runner("CLIPTextEncodeSD3", clip=clip, empty_padding=padding, **prompts)
    return cond, opts["pooled_output"]


def test_sd3_prompt_shapes(runner: Runner, triple) -> None:
    cond, pooled = encode_sd3(runner, triple)
    assert cond.shape == (1, 77 + 77, 4096) and pooled.shape == (1, 32 + 32)
    long_g = " ".join(["fox"] * 100)  # two CLIP windows: CLIP-L's one prompt is extended by an empty window
    cond, _ = encode_sd3(runner, triple, clip_g=long_g)
    assert cond.shape == (1, 154 + 77, 4096)
    plain = runner("CLIPTextEncode", text="a fox", clip=triple)[0][0]
    assert torch.equal(plain, encode_sd3(runner, triple)[0])


def test_empty_padding_none_leaves_empty_prompts_out(runner: Runner, triple) -> None:
    cond, pooled = encode_sd3(runner, triple, clip_l="", clip_g="", t5xxl="")
    assert cond.shape == (1, 1, 4096) and not pooled.any()  # T5's end token alone; no CLIP part
    cond, pooled = encode_sd3(runner, triple, "empty_prompt", clip_l="", clip_g="", t5xxl="")
    assert cond.shape == (1, 154, 4096) and pooled.any()
    only_l_empty, _ = encode_sd3(runner, triple, clip_l="")  # one CLIP empty: it is encoded as the empty prompt
    assert only_l_empty.shape == (1, 154, 4096)
    assert torch.equal(only_l_empty, encode_sd3(runner, triple, "empty_prompt", clip_l="")[0])


def test_clip_loaders_take_any_subset(runner: Runner) -> None:
    t5_only = runner("CLIPLoader", clip_name=DEMO_T5, type="sd3", device="cpu")
    cond, pooled = encode_sd3(runner, t5_only)
    assert cond.shape == (1, 77, 4096) and pooled.shape == (1, 768 + 1280) and not pooled.any()
    dual = runner("DualCLIPLoader", clip_name1=DEMO_CLIP_G, clip_name2=DEMO_CLIP_L, type="sd3")
    cond, pooled = encode_sd3(runner, dual)
    assert cond.shape == (1, 77, 4096) and pooled.shape == (1, 64)
    sd1 = runner("CLIPLoader", clip_name=DEMO_CLIP_L, type="stable_diffusion")
    assert sd1.family == "sd1" and sd1.encode("a fox").cond.shape == (1, 77, 32)


def test_clip_loader_errors_name_the_problem(runner: Runner) -> None:
    with pytest.raises(ValueError, match="type: CLIPLoader type 'mochi' is not supported"):
        runner("CLIPLoader", clip_name=DEMO_T5, type="mochi")
    with pytest.raises(ValueError, match=r"clip_name: .* holds no CLIP-L"):
        runner("CLIPLoader", clip_name=DEMO_T5, type="stable_diffusion")
    with pytest.raises(ValueError, match=r"clip_name1: .*a second clip_l"):
        runner("TripleCLIPLoader", clip_name1=DEMO_CLIP_L, clip_name2=DEMO_CLIP_L, clip_name3=DEMO_T5)
    flux = runner("DualCLIPLoader", clip_name1=DEMO_CLIP_L, clip_name2=DEMO_T5, type="flux")
    with pytest.raises(ValueError, match="CLIPTextEncodeSD3 needs SD3 text encoders"):
        encode_sd3(runner, flux)


def test_skip_layer_guidance_nodes(runner: Runner) -> None:
    from diffusion.post_guidance import SkipLayerGuidance

    sd3 = runner("UNETLoader", unet_name=DEMO_SD3, weight_dtype="default")
    assert runner("SkipLayerGuidanceSD3", model=sd3, layers=" ", scale=3.0, start_percent=0.0, end_percent=1.0) is sd3
    runner.events.clear()
    guided = runner("SkipLayerGuidanceSD3", model=sd3, layers="1, 9", scale=3.0, start_percent=0.0, end_percent=0.5)
    [slg] = guided.post_guidance
    assert isinstance(slg, SkipLayerGuidance) and slg.skip.double == (1, 9) and slg.sigma_start == 1.0
    assert slg.sigma_end == pytest.approx(sd3.schedule.percent_to_sigma(0.5))
    assert any("has 2 joint blocks" in e.message and "9 skip nothing" in e.message for e in runner.events)
    flux = runner("UNETLoader", unet_name=DEMO_FLUX, weight_dtype="default")
    dit = runner("SkipLayerGuidanceDiT", model=flux, double_layers="0", single_layers="1", scale=2.0,
                 start_percent=0.01, end_percent=0.15, rescaling_scale=0.5)  # fmt: skip
    [slg] = dit.post_guidance
    assert (slg.skip.double, slg.skip.single, slg.rescale) == ((0,), (1,), 0.5)
