"""Model-option nodes on the tiny demo checkpoint: each returns a patched copy, and KSampler honours it."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import nodes
from diffusion.demo import DEMO_NAME, write_demo_checkpoint
from engine.context import NodeContext, RunControl
from engine.environment import NodeEnvironment
from engine.folders import Folders
from engine.registry import NodeRegistry
from nodes.shared import node_environment


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folders = Folders.under(tmp_path_factory.mktemp("patches"))
    folders.ensure()
    write_demo_checkpoint(folders.model_dirs("checkpoints")[0])
    env: NodeEnvironment = node_environment(folders, force_cpu=True)
    registry = NodeRegistry(env)
    nodes.register_builtin(registry)

    def call(class_type: str, **inputs: Any) -> Any:
        spec = registry.get(class_type)
        assert spec is not None, class_type
        if spec.wants_context:
            inputs["__context__"] = NodeContext("p", "1", "1", class_type, lambda e: None, RunControl(), env=env)
        return spec.invoke(inputs)

    return call


@pytest.fixture(scope="module")
def sample(run: Any) -> Any:
    model, clip, _vae = run("CheckpointLoaderSimple", ckpt_name=DEMO_NAME)
    positive = run("CLIPTextEncode", text="a red fox", clip=clip)
    negative = run("CLIPTextEncode", text="blurry", clip=clip)
    latent = run("EmptyLatentImage", width=64, height=64, batch_size=1)

    def go(patched: Any = None, cfg: float = 6.0) -> torch.Tensor:
        out = run(
            "KSampler",
            model=patched or model,
            seed=5,
            steps=2,
            cfg=cfg,
            sampler_name="euler",
            scheduler="normal",
            positive=positive,
            negative=negative,
            latent_image=latent,
            denoise=1.0,
        )
        return out["samples"]

    go.model = model  # type: ignore[attr-defined]
    return go


def test_patches_copy_the_model(run: Any, sample: Any) -> None:
    model = sample.model
    patched = run("RescaleCFG", model=model, multiplier=0.7)
    assert patched is not model and len(patched.post_guidance) == 1 and model.post_guidance == ()
    assert patched.unet is model.unet
    both = run("CFGNorm", model=patched, strength=1.0)
    assert len(both.post_guidance) == 2


def test_ksampler_honours_the_options(run: Any, sample: Any) -> None:
    model = sample.model
    plain = sample()
    assert torch.allclose(sample(run("RescaleCFG", model=model, multiplier=0.0)), plain, atol=1e-5)
    assert torch.allclose(sample(run("Epsilon Scaling", model=model, scaling_factor=1.0)), plain, atol=1e-5)
    assert torch.allclose(sample(run("APG", model=model, eta=1.0, norm_threshold=0.0, momentum=0.0)), plain, atol=1e-4)
    for patched in (
        run("CFGZeroStar", model=model),
        run("Epsilon Scaling", model=model, scaling_factor=1.2),
        run("RescaleCFG", model=model, multiplier=1.0),
    ):
        assert not torch.allclose(sample(patched), plain, atol=1e-4)


def test_latent_operation_on_guidance(run: Any, sample: Any) -> None:
    op = run("LatentOperationTonemapReinhard", multiplier=1.0)
    patched = run("LatentApplyOperationCFG", model=sample.model, operation=op)
    assert sample(patched).shape == sample().shape and not torch.allclose(sample(patched), sample(), atol=1e-5)


def test_no_model_is_a_clear_error(run: Any) -> None:
    with pytest.raises(ValueError, match="model"):
        run("CFGZeroStar", model=None)


def test_freeu_neutral_settings_change_nothing_and_others_do(run: Any, sample: Any) -> None:
    model, plain = sample.model, sample()
    neutral = {"b1": 1.0, "b2": 1.0, "s1": 1.0, "s2": 1.0}
    assert torch.allclose(sample(run("FreeU", model=model, **neutral)), plain, atol=1e-5)
    assert torch.allclose(sample(run("FreeU_V2", model=model, **neutral)), plain, atol=1e-5)
    strong = {"b1": 1.1, "b2": 1.6, "s1": 0.9, "s2": 0.2}
    v1, v2 = sample(run("FreeU", model=model, **strong)), sample(run("FreeU_V2", model=model, **strong))
    assert not torch.allclose(v1, plain, atol=1e-4) and not torch.allclose(v1, v2, atol=1e-4)
    assert not any(r._forward_pre_hooks for r in model.unet.modules())  # hooks live for one call only


def test_model_sampling_discrete(run: Any, sample: Any) -> None:
    model = sample.model
    v = run("ModelSamplingDiscrete", model=model, sampling="v_prediction", zsnr=False)
    assert v.prediction == "v" and model.prediction == "eps" and v.schedule is model.schedule
    zsnr = run("ModelSamplingDiscrete", model=model, sampling="eps", zsnr=True)
    assert zsnr.schedule.sigma_max > 1000 and zsnr.schedule.sigma_min == pytest.approx(model.schedule.sigma_min)
    assert torch.allclose(sample(run("ModelSamplingDiscrete", model=model, sampling="eps", zsnr=False)), sample())
    assert not torch.allclose(sample(v), sample(), atol=1e-4)
    x0 = run("ModelSamplingDiscrete", model=model, sampling="x0", zsnr=False)
    c_skip, c_out, _c_in = x0.scalings(torch.tensor([3.0]))
    assert c_skip.item() == 0 and c_out.item() == 1
    with pytest.raises(ValueError, match="lcm"):
        run("ModelSamplingDiscrete", model=model, sampling="lcm", zsnr=False)
