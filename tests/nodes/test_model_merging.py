"""Model merging (whole, per block, text encoders) and saving, on two tiny SD 1.x checkpoints with different
random weights, loaded and written by the real loaders."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from safetensors import safe_open
from torch import nn

import nodes
from diffusion.loader import load_checkpoint, load_vae_file
from diffusion.merge import merge_modules
from diffusion.tiny import build_tiny, tiny_spec, write_checkpoint
from engine.context import NodeContext, RunControl
from engine.environment import NodeEnvironment
from engine.events import NodeWarning
from engine.folders import Folders
from engine.registry import NodeRegistry
from nodes.shared import node_environment

PROMPT = {"1": {"class_type": "CheckpointSave", "inputs": {}}}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> NodeEnvironment:
    folders = Folders.under(tmp_path_factory.mktemp("merge"))
    folders.ensure()
    checkpoints = folders.model_dirs("checkpoints")[0]
    for seed, name in ((0, "a.safetensors"), (10, "b.safetensors")):
        write_checkpoint(checkpoints / name, build_tiny(tiny_spec("sd1"), seed=seed))
    return node_environment(folders, force_cpu=True)


@pytest.fixture(scope="module")
def run(env: NodeEnvironment) -> Any:
    registry = NodeRegistry(env)
    nodes.register_builtin(registry)
    events: list[Any] = []

    def call(class_type: str, **inputs: Any) -> Any:
        spec = registry.get(class_type)
        assert spec is not None, class_type
        if spec.wants_context:
            inputs["__context__"] = NodeContext("p", "1", "1", class_type, events.append, RunControl(), env=env)
        return spec.invoke(inputs)

    call.events = events  # type: ignore[attr-defined]
    return call


@pytest.fixture(scope="module")
def a(run: Any) -> tuple[Any, Any, Any]:
    return run("CheckpointLoaderSimple", ckpt_name="a.safetensors")


@pytest.fixture(scope="module")
def b(run: Any) -> tuple[Any, Any, Any]:
    return run("CheckpointLoaderSimple", ckpt_name="b.safetensors")


def params(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().float() for k, v in module.named_parameters()}


IN, MID, OUT = "down_blocks.0.resnets.0.conv1.weight", "mid_block.resnets.0.conv1.weight", "conv_out.weight"


def test_merge_simple_weights_and_leaves_the_inputs_alone(run: Any, a: Any, b: Any) -> None:
    before = params(a[0].unet)
    kept = run("ModelMergeSimple", model1=a[0], model2=b[0], ratio=1.0)
    assert kept.unet.get_parameter(IN) is a[0].unet.get_parameter(IN)  # ratio 1 shares model1's tensors
    mixed = run("ModelMergeSimple", model1=a[0], model2=b[0], ratio=0.25)
    pa, pb, pm = params(a[0].unet), params(b[0].unet), params(mixed.unet)
    for name in (IN, MID, OUT):
        assert torch.allclose(pm[name], 0.25 * pa[name] + 0.75 * pb[name], atol=1e-6)
    assert all(torch.equal(before[k], pa[k]) for k in before)


def test_subtract_then_add_gives_the_model_back(run: Any, a: Any, b: Any) -> None:
    difference = run("ModelMergeSubtract", model1=a[0], model2=b[0], multiplier=1.0)
    restored = run("ModelMergeAdd", model1=difference, model2=b[0])
    pa, pr = params(a[0].unet), params(restored.unet)
    assert all(torch.allclose(pr[k], pa[k], atol=1e-5) for k in pa)


def test_merge_blocks_by_input_middle_and_output(run: Any, a: Any, b: Any) -> None:
    merged = run("ModelMergeBlocks", model1=a[0], model2=b[0], input=1.0, middle=0.0, out=0.5)
    pa, pb, pm = params(a[0].unet), params(b[0].unet), params(merged.unet)
    assert torch.equal(pm[IN], pa[IN]) and torch.equal(pm[MID], pb[MID])
    assert torch.allclose(pm[OUT], 0.5 * (pa[OUT] + pb[OUT]), atol=1e-6)  # out.2 is an output layer


def test_merge_sd1_takes_a_ratio_per_ldm_block(run: Any, a: Any, b: Any) -> None:
    ratios = {k: 1.0 for k in nodes.model_merging.SD1_BLOCKS} | {"input_blocks.1.": 0.0}
    merged = run("ModelMergeSD1", model1=a[0], model2=b[0], **ratios)
    pa, pb, pm = params(a[0].unet), params(b[0].unet), params(merged.unet)
    assert torch.equal(pm[IN], pb[IN])  # down_blocks.0.resnets.0 is input_blocks.1.0
    assert torch.equal(pm[MID], pa[MID]) and torch.equal(pm[OUT], pa[OUT])


def test_clip_merges(run: Any, a: Any, b: Any) -> None:
    merged = run("CLIPMergeSimple", clip1=a[1], clip2=b[1], ratio=0.5)
    name = "text_model.final_layer_norm.weight"
    pa, pb = params(a[1].units[0].module), params(b[1].units[0].module)
    key = next(k for k in pa if k.endswith(name.removeprefix("text_model.")))
    assert torch.allclose(params(merged.units[0].module)[key], 0.5 * (pa[key] + pb[key]), atol=1e-6)
    diff = run("CLIPMergeSubtract", clip1=a[1], clip2=b[1], multiplier=1.0)
    back = run("CLIPMergeAdd", clip1=diff, clip2=b[1])
    assert torch.allclose(params(back.units[0].module)[key], pa[key], atol=1e-5)


def test_merge_modules_keeps_what_the_second_lacks() -> None:
    first, second = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 3)), nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 4))
    merged = merge_modules(first, second, lambda _n: (0.0, 1.0))
    assert merged.mismatched == ["1.weight", "1.bias"]
    assert torch.equal(merged.module[0].weight, second[0].weight)
    assert merged.module[1].weight is first[1].weight


def _saved(env: NodeEnvironment, folder: str) -> Any:
    [path] = sorted((env.folders.output / folder).glob("*.safetensors"))
    return path


def test_checkpoint_save_round_trips_through_the_loader(run: Any, env: NodeEnvironment, a: Any) -> None:
    workflow = {"nodes": []}
    run(
        "CheckpointSave",
        model=a[0],
        clip=a[1],
        vae=a[2],
        filename_prefix="checkpoints/merged",
        prompt=PROMPT,
        extra_pnginfo={"workflow": workflow},
    )
    path = _saved(env, "checkpoints")
    assert path.name == "merged_00001_.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta["modelspec.architecture"] == "stable-diffusion-v1" and json.loads(meta["prompt"]) == PROMPT
    assert json.loads(meta["workflow"]) == workflow
    again = load_checkpoint(path, env.models)
    for original, reloaded in (
        (a[0].unet, again.model.unet),
        (a[2].module, again.vae.module),
        (a[1].units[0].module, again.clip.units[0].module),
    ):
        po, pr = params(original), params(reloaded)
        assert po.keys() == pr.keys() and all(torch.equal(po[k], pr[k]) for k in po)


def test_vae_model_and_clip_saves(run: Any, env: NodeEnvironment, a: Any) -> None:
    run("VAESave", vae=a[2], filename_prefix="vae/mine", prompt=None, extra_pnginfo=None)
    vae = load_vae_file(_saved(env, "vae"), env.models)
    assert all(torch.equal(params(vae.module)[k], v) for k, v in params(a[2].module).items())
    run("ModelSave", model=a[0], filename_prefix="diffusion_models/mine", prompt=None, extra_pnginfo=None)
    with safe_open(str(_saved(env, "diffusion_models")), "pt") as f:
        keys = set(f.keys())
    assert "out.2.weight" in keys and not any(k.startswith("model.") for k in keys)
    run("CLIPSave", clip=a[1], filename_prefix="clip/mine", prompt=None, extra_pnginfo=None)
    with safe_open(str(_saved(env, "clip")), "pt") as f:
        names = list(f.keys())
    assert any(k.startswith("cond_stage_model.transformer.text_model.") for k in names)


def test_missing_inputs_are_named(run: Any, a: Any) -> None:
    with pytest.raises(ValueError, match="vae"):
        run("CheckpointSave", model=a[0], clip=a[1], vae=None, filename_prefix="x", prompt=None, extra_pnginfo=None)
    assert not [e for e in run.events if isinstance(e, NodeWarning)]
