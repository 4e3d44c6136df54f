"""Model-option nodes on the tiny demo checkpoint: each returns a patched copy, and KSampler honours it."""

from __future__ import annotations

from dataclasses import replace
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

    def go(patched: Any = None, cfg: float = 6.0, size: int = 64) -> torch.Tensor:
        latent_image = latent if size == 64 else run("EmptyLatentImage", width=size, height=size, batch_size=1)
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
            latent_image=latent_image,
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
    assert v.prediction == "v" and model.prediction == "eps" and torch.equal(v.schedule.sigmas, model.schedule.sigmas)
    zsnr = run("ModelSamplingDiscrete", model=model, sampling="eps", zsnr=True)
    assert zsnr.schedule.sigma_max > 1000 and zsnr.schedule.sigma_min == pytest.approx(model.schedule.sigma_min)
    assert torch.allclose(sample(run("ModelSamplingDiscrete", model=model, sampling="eps", zsnr=False)), sample())
    assert not torch.allclose(sample(v), sample(), atol=1e-4)
    x0 = run("ModelSamplingDiscrete", model=model, sampling="x0", zsnr=False)
    c_skip, c_out, _c_in = x0.scalings(torch.tensor([3.0]))
    assert c_skip.item() == 0 and c_out.item() == 1
    with pytest.raises(ValueError, match="lcm"):
        run("ModelSamplingDiscrete", model=model, sampling="lcm", zsnr=False)


def test_model_sampling_discrete_after_a_continuous_node_rebuilds_the_discrete_schedule(run: Any, sample: Any) -> None:
    from diffusion.sampling import schedule_sigmas

    model = sample.model
    for continuous, inputs in (
        ("ModelSamplingContinuousEDM", {"sampling": "edm", "sigma_max": 80.0, "sigma_min": 0.002}),
        ("ModelSamplingContinuousV", {"sampling": "v_prediction", "sigma_max": 500.0, "sigma_min": 0.03}),
    ):
        edm = run(continuous, model=model, **inputs)
        for sampling, prediction in (("eps", "eps"), ("v_prediction", "v")):
            discrete = run("ModelSamplingDiscrete", model=edm, sampling=sampling, zsnr=False)
            plain = run("ModelSamplingDiscrete", model=model, sampling=sampling, zsnr=False)
            assert (discrete.prediction, discrete.sigma_data) == (prediction, 1.0)
            assert type(discrete.schedule) is type(model.schedule)
            assert torch.equal(discrete.schedule.sigmas, model.schedule.sigmas)
            for scheduler in ("normal", "karras"):
                assert torch.equal(schedule_sigmas(discrete, scheduler, 6), schedule_sigmas(plain, scheduler, 6))
            sigma = torch.tensor([3.0])
            assert torch.equal(discrete.timestep(sigma), plain.timestep(sigma))
            assert all(torch.equal(a, b) for a, b in zip(discrete.scalings(sigma), plain.scalings(sigma), strict=True))
    zsnr = run("ModelSamplingDiscrete", model=edm, sampling="eps", zsnr=True)
    assert torch.equal(zsnr.schedule.sigmas, model.schedule.zero_terminal_snr().sigmas)
    assert torch.equal(sample(run("ModelSamplingDiscrete", model=edm, sampling="eps", zsnr=False)), sample())


def test_attention_guidance_nodes(run: Any, sample: Any) -> None:
    model, plain = sample.model, sample()
    assert torch.equal(sample(run("PerturbedAttentionGuidance", model=model, scale=0.0)), plain)
    pag = sample(run("PerturbedAttentionGuidance", model=model, scale=3.0))
    sag = run("SelfAttentionGuidance", model=model, scale=0.5, blur_sigma=2.0)
    assert len(sag.unet_patches) == 1 and len(sag.post_guidance) == 1
    assert torch.equal(sample(run("SelfAttentionGuidance", model=model, scale=0.0, blur_sigma=2.0)), plain)
    for guided in (pag, sample(sag)):
        assert not torch.allclose(guided, plain, atol=1e-4)
    assert torch.equal(sample(), plain)  # the loaded model is as it was
    with pytest.raises(ValueError, match="middle block"):
        run("PerturbedAttentionGuidance", model=replace(model, unet=torch.nn.Linear(2, 2)), scale=1.0)


def test_hypertile_and_token_merging_nodes(run: Any, sample: Any) -> None:
    model, plain = sample.model, sample()
    covering = run("HyperTile", model=model, tile_size=2048, swap_size=2, max_depth=1, scale_depth=False)
    assert torch.equal(sample(covering), plain)
    # 32-pixel tiles (the smallest) at depth 1 of a 128-pixel image: 2 x 2 tiles of its 8 x 8 tokens
    tiled = sample(run("HyperTile", model=model, tile_size=16, swap_size=1, max_depth=1, scale_depth=False), size=128)
    assert tiled.shape == (1, 4, 16, 16) and not torch.allclose(tiled, sample(size=128), atol=1e-4)
    # the demo UNet has no self-attention at full resolution, the only depth token merging acts on
    assert torch.equal(sample(run("TomePatchModel", model=model, ratio=0.5)), plain)
    assert run("TomePatchModel", model=model, ratio=0.5).unet_patches[0].ratio == 0.5


def test_deep_shrink_node(run: Any, sample: Any) -> None:
    model, plain = sample.model, sample()
    widgets = {"block_number": 2, "downscale_factor": 2.0, "downscale_after_skip": True}
    methods = {"downscale_method": "bislerp", "upscale_method": "bicubic"}
    never = run("PatchModelAddDownscale", model=model, start_percent=1.0, end_percent=1.0, **widgets, **methods)
    assert torch.equal(sample(never), plain)
    early = {"start_percent": 0.0, "end_percent": 0.35}
    shrunk = sample(run("PatchModelAddDownscale", model=model, **early, **widgets, **methods))
    assert shrunk.shape == plain.shape and not torch.allclose(shrunk, plain, atol=1e-4)


def test_perp_neg_node(run: Any, sample: Any) -> None:
    model, plain = sample.model, sample()
    clip = run("CheckpointLoaderSimple", ckpt_name=DEMO_NAME)[1]
    empty = run("CLIPTextEncode", text="", clip=clip)
    patched = run("PerpNeg", model=model, empty_conditioning=empty, neg_scale=1.0)
    assert len(patched.post_guidance) == 1
    assert not torch.allclose(sample(patched), plain, atol=1e-4)


def test_differential_diffusion_node(run: Any) -> None:
    model, clip, _vae = run("CheckpointLoaderSimple", ckpt_name=DEMO_NAME)
    patched = run("DifferentialDiffusion", model=model, strength=1.0)
    assert patched.denoise_mask is not None and model.denoise_mask is None
    positive = run("CLIPTextEncode", text="a red fox", clip=clip)
    original = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    mask = torch.linspace(0, 1, 64).expand(1, 64, 64).contiguous()
    latent = {"samples": original, "noise_mask": mask}

    def inpaint(m: Any) -> torch.Tensor:
        widgets = {"seed": 1, "steps": 3, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}
        return run("KSampler", model=m, positive=positive, negative=positive, latent_image=latent, **widgets)["samples"]

    assert not torch.allclose(inpaint(patched), inpaint(model), atol=1e-4)


def test_continuous_model_sampling_nodes(run: Any, sample: Any) -> None:
    from diffusion.continuous import ContinuousSchedule

    model = sample.model
    edm = run("ModelSamplingContinuousEDM", model=model, sampling="edm", sigma_max=80.0, sigma_min=0.002)
    assert isinstance(edm.schedule, ContinuousSchedule) and edm.schedule.time_input == "edm"
    assert (edm.prediction, edm.sigma_data) == ("edm", 0.5) and model.prediction == "eps"
    assert edm.schedule.sigma_max == pytest.approx(80.0, rel=1e-5)
    v = run("ModelSamplingContinuousEDM", model=model, sampling="v_prediction", sigma_max=120.0, sigma_min=0.002)
    assert (v.prediction, v.sigma_data) == ("v", 1.0)
    cv = run("ModelSamplingContinuousV", model=model, sampling="v_prediction", sigma_max=500.0, sigma_min=0.03)
    assert cv.schedule.time_input == "v" and cv.prediction == "v"
    out = sample(edm)
    assert out.shape == sample().shape and bool(torch.isfinite(out).all())
    playground = run("ModelSamplingContinuousEDM", model=model, sampling="edm_playground_v2.5", sigma_max=80.0,
                     sigma_min=0.002)  # fmt: skip
    assert playground.prediction == "edm" and playground.latent_format.vae_scale == pytest.approx(0.18215)
    assert model.latent_format is None and sample(playground).shape == out.shape
    with pytest.raises(ValueError, match="Cosmos"):
        run("ModelSamplingContinuousEDM", model=model, sampling="cosmos_rflow", sigma_max=80.0, sigma_min=0.002)
    with pytest.raises(ValueError, match="sigma_min"):
        run("ModelSamplingContinuousV", model=model, sampling="v_prediction", sigma_max=500.0, sigma_min=0.0)


PATCH_NODES: dict[str, dict[str, Any]] = {
    "PerturbedAttentionGuidance": {"scale": 3.0},
    "SelfAttentionGuidance": {"scale": 0.5, "blur_sigma": 2.0},
    "HyperTile": {"tile_size": 256, "swap_size": 2, "max_depth": 0, "scale_depth": False},
    "TomePatchModel": {"ratio": 0.3},
    "PatchModelAddDownscale": {
        "block_number": 3,
        "downscale_factor": 2.0,
        "start_percent": 0.0,
        "end_percent": 0.35,
        "downscale_after_skip": True,
        "downscale_method": "bicubic",
        "upscale_method": "bicubic",
    },
    "DifferentialDiffusion": {"strength": 1.0},
    "PerpNeg": {"empty_conditioning": ["4", 0], "neg_scale": 1.0},
    "ModelSamplingContinuousEDM": {"sampling": "edm", "sigma_max": 80.0, "sigma_min": 0.002},
    "ModelSamplingContinuousV": {"sampling": "v_prediction", "sigma_max": 500.0, "sigma_min": 0.03},
}


def test_each_patch_node_in_a_workflow(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.nodes.tiny_flows import LOADER, SAMPLER, Flows, txt2img

    flows = Flows.create(tmp_path_factory.mktemp("patch-flows"))
    plain_flow = txt2img()
    plain = flows.run(plain_flow).latent
    assert plain is not None
    for class_type, widgets in PATCH_NODES.items():
        flow = txt2img(prefix=class_type)
        flow["patch"] = {"class_type": class_type, "inputs": {"model": [LOADER, 0], **widgets}}
        flow[SAMPLER]["inputs"]["model"] = ["patch", 0]
        result = flows.run(flow)
        assert "patch" in result.outcome.executed and result.latent is not None, class_type
        assert result.latent.shape == plain.shape and bool(torch.isfinite(result.latent).all()), class_type
    flows.keep_only_the_checkpoint(plain_flow)
    again = flows.run(plain_flow)  # the cached checkpoint's model, sampled again after every patch ran on it
    assert again.outcome.executed and SAMPLER in again.outcome.executed
    assert torch.equal(again.latent, plain)
