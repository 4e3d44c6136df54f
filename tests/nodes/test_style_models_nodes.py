"""StyleModelLoader and StyleModelApply on tiny files, and FLUX Redux end to end through the executor."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import nodes
from diffusion.checkpoint import CheckpointError
from diffusion.demo_dit import DEMO_CLIP_L, DEMO_FLUX, DEMO_T5, DIT_DEMO_MODELS, write_dit_demo_model
from diffusion.tiny_dit import redux_file_state, siglip_file_state
from engine.environment import NodeEnvironment
from engine.executor import Executor
from engine.folders import Folders
from engine.registry import NodeRegistry
from engine.signature import Signer
from engine.validate import validate
from engine.workflow import parse_api
from nodes.shared import node_environment
from tests.diffusion.tiny_image_models import tiny_t2i_style, tiny_vision_state


def test_loader_and_apply(run: Any, env: Any) -> None:
    folder = env.folders.model_dirs("style_models")[0]
    save_file(tiny_t2i_style(context_dim=16), str(folder / "t2iadapter_style_sd14v1.safetensors"))
    save_file(redux_file_state(text_dim=16), str(folder / "flux1-redux-dev.safetensors"))
    save_file(tiny_vision_state(), str(env.folders.model_dirs("clip_vision")[0] / "vit.safetensors"))
    (vision,) = run("CLIPVisionLoader", clip_name="vit.safetensors")
    (encoded,) = run("CLIPVisionEncode", clip_vision=vision, image=torch.rand(2, 32, 32, 3), crop="center")
    conditioning = [[torch.randn(1, 5, 16), {}]]
    style = run("StyleModelLoader", style_model_name="t2iadapter_style_sd14v1.safetensors")
    assert style.kind == "t2i-style"
    (scaled,) = run(
        "StyleModelApply",
        conditioning=conditioning,
        style_model=style,
        clip_vision_output=encoded,
        strength=0.5,
        strength_type="multiply",
    )
    assert scaled[0].shape == (1, 5 + 2 * 4, 16)  # two images, four style tokens each
    assert torch.allclose(scaled[0][:, 5:], style.tokens(encoded).reshape(1, 8, 16) * 0.5)
    (biased,) = run(
        "StyleModelApply",
        conditioning=conditioning,
        style_model=style,
        clip_vision_output=encoded,
        strength=3.0,
        strength_type="attn_bias",
    )
    assert biased[1]["attention_bias"][5:].allclose(torch.full((8,), 1.0986), atol=1e-4)
    redux = run("StyleModelLoader", style_model_name="flux1-redux-dev.safetensors")
    (tokens,) = run(
        "StyleModelApply",
        conditioning=conditioning,
        style_model=redux,
        clip_vision_output=encoded,
        strength=1.0,
        strength_type="multiply",
    )
    patches = encoded.last_hidden_state.shape[1]
    assert tokens[0].shape == (1, 5 + 2 * patches, 16)


def test_loader_names_its_input(run: Any, env: Any) -> None:
    save_file({"x.weight": torch.zeros(1)}, str(env.folders.model_dirs("style_models")[0] / "other.safetensors"))
    with pytest.raises(CheckpointError, match=r"style_model_name: other\.safetensors: not a style model"):
        run("StyleModelLoader", style_model_name="other.safetensors")


# -- FLUX Redux end to end: SigLIP -> Redux -> the FLUX demo model, through the executor -------------------------


@pytest.fixture(scope="module")
def redux_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[NodeEnvironment, NodeRegistry]:
    """The FLUX demo files, a tiny SigLIP encoder (with its pooling head, as the single files hold it), a tiny Redux
    model for the demo T5's width (32) and a reference image."""
    folders = Folders.under(tmp_path_factory.mktemp("loom"))
    folders.ensure()
    for model in DIT_DEMO_MODELS:
        if model.name in (DEMO_FLUX, DEMO_CLIP_L, DEMO_T5):
            write_dit_demo_model(model, folders.model_dirs(model.folder)[0])
    save_file(siglip_file_state(), str(folders.model_dirs("clip_vision")[0] / SIGLIP_FILE))
    save_file(redux_file_state(text_dim=32, hidden=64), str(folders.model_dirs("style_models")[0] / REDUX_FILE))
    pixels = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folders.input / "reference.png")
    env = node_environment(folders, force_cpu=True)
    registry = NodeRegistry(env)
    nodes.register_builtin(registry)
    return env, registry


SIGLIP_FILE = "sigclip_vision_patch14_384.safetensors"
REDUX_FILE = "flux1-redux-dev.safetensors"


def redux_flow(strength: float | None, strength_type: str = "multiply", seed: int = 5) -> dict[str, Any]:
    """FLUX text-to-image whose prompt gets the Redux tokens of the reference image (none when `strength` is
    None): UNETLoader, DualCLIPLoader, CLIPTextEncodeFlux, CLIPVisionLoader -> CLIPVisionEncode, StyleModelLoader
    -> StyleModelApply, KSampler, SaveLatent."""
    flow: dict[str, Any] = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": DEMO_FLUX, "weight_dtype": "default"}},
        "2": {
            "class_type": "DualCLIPLoader",
            "inputs": {"clip_name1": DEMO_CLIP_L, "clip_name2": DEMO_T5, "type": "flux", "device": "default"},
        },
        "3": {
            "class_type": "CLIPTextEncodeFlux",
            "inputs": {"clip_l": "a fox", "t5xxl": "a red fox", "guidance": 3.5, "clip": ["2", 0]},
        },
        "4": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["3", 0]}},
        "5": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "10": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": SIGLIP_FILE}},
        "11": {"class_type": "LoadImage", "inputs": {"image": "reference.png"}},
        "12": {
            "class_type": "CLIPVisionEncode",
            "inputs": {"clip_vision": ["10", 0], "image": ["11", 0], "crop": "center"},
        },
        "13": {"class_type": "StyleModelLoader", "inputs": {"style_model_name": REDUX_FILE}},
        "14": {
            "class_type": "StyleModelApply",
            "inputs": {
                "conditioning": ["3", 0],
                "style_model": ["13", 0],
                "clip_vision_output": ["12", 0],
                "strength": strength if strength is not None else 1.0,
                "strength_type": strength_type,
            },
        },
        "6": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": seed,
                "steps": 2,
                "cfg": 1.0,
                "sampler_name": "euler",
                "scheduler": "simple",
                "positive": ["14", 0] if strength is not None else ["3", 0],
                "negative": ["4", 0],
                "latent_image": ["5", 0],
                "denoise": 1.0,
            },
        },
        "9": {"class_type": "SaveLatent", "inputs": {"samples": ["6", 0], "filename_prefix": "latents/redux"}},
    }
    return flow


def run_flow(env: NodeEnvironment, registry: NodeRegistry, flow: dict[str, Any]) -> tuple[Executor, Any, torch.Tensor]:
    """Validate and execute `flow` with a fresh executor: (the executor, the parsed workflow, the saved latent)."""
    workflow = parse_api(copy.deepcopy(flow))
    checked = validate(workflow, registry)
    assert checked.ok, checked.to_response()
    executor = Executor(registry, env=env)
    outcome = executor.run(workflow, outputs=checked.outputs, prompt_id="p", emit=lambda _event: None)
    assert outcome.status == "success", outcome.error
    saved = outcome.outputs["9"]["latents"][0]
    latent = load_file(str(env.folders.output / saved["subfolder"] / saved["filename"]))["latent_tensor"]
    return executor, workflow, latent


def node_output(executor: Executor, workflow: Any, registry: NodeRegistry, node_id: str) -> Any:
    """What a node of the last run returned (its cache entry)."""
    specs = {n.class_type: registry.get(n.class_type) for n in workflow.nodes.values()}
    entry = executor.cache.get(Signer(workflow, specs)(node_id))
    assert entry is not None, node_id
    return entry.outputs[0]


def test_flux_redux_end_to_end(redux_env: tuple[NodeEnvironment, NodeRegistry]) -> None:
    env, registry = redux_env
    plain_run, plain_flow, plain = run_flow(env, registry, redux_flow(None))
    executor, workflow, styled = run_flow(env, registry, redux_flow(1.0))
    [[text, text_opts]] = node_output(plain_run, plain_flow, registry, "3")
    [[cond, opts]] = node_output(executor, workflow, registry, "14")
    encoded = node_output(executor, workflow, registry, "12")
    # the SigLIP encoding's last layer, 3 x 3 patches of the 42 px input, one Redux token each at T5's width
    assert encoded.last_hidden_state.shape == (1, 9, 32)
    assert text.shape[2] == 32 and cond.shape == (1, text.shape[1] + 9, 32)
    assert torch.equal(cond[:, : text.shape[1]], text) and opts.keys() == text_opts.keys()
    redux = node_output(executor, workflow, registry, "13")
    assert torch.allclose(cond[:, text.shape[1] :], redux.tokens(encoded))
    assert torch.isfinite(styled).all() and not torch.allclose(styled, plain, atol=1e-4)
    # multiply scales the tokens; the prompt grows by the same tokens whatever the strength
    half_run, half_flow, half = run_flow(env, registry, redux_flow(0.5))
    [[half_cond, _]] = node_output(half_run, half_flow, registry, "14")
    assert torch.allclose(half_cond[:, text.shape[1] :], 0.5 * cond[:, text.shape[1] :])
    assert not torch.allclose(half, styled, atol=1e-4)
    assert torch.equal(run_flow(env, registry, redux_flow(1.0))[2], styled)


def test_attn_bias_redux_on_flux_end_to_end(redux_env: tuple[NodeEnvironment, NodeRegistry]) -> None:
    env, registry = redux_env
    plain = run_flow(env, registry, redux_flow(None))[2]
    styled_run, styled_flow, styled = run_flow(env, registry, redux_flow(1.0))
    # strength 1 biases nothing: the same image as the tokens plainly appended
    assert torch.equal(run_flow(env, registry, redux_flow(1.0, "attn_bias"))[2], styled)
    executor, workflow, weaker = run_flow(env, registry, redux_flow(0.25, "attn_bias"))
    [[cond, opts]] = node_output(executor, workflow, registry, "14")
    assert torch.allclose(opts["attention_bias"][-9:], torch.full((9,), -1.3863), atol=1e-4)
    assert not opts["attention_bias"][:-9].any() and opts["attention_bias_group"].tolist()[-10:] == [0] + [1] * 9
    # a weaker Redux: the tokens stay as they are, the image attends to them less and moves towards the prompt's
    assert torch.equal(cond, node_output(styled_run, styled_flow, registry, "14")[0][0])
    assert (weaker - plain).norm() < (styled - plain).norm() and not torch.allclose(weaker, styled, atol=1e-4)
