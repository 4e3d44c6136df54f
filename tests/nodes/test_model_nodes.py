"""The model-facing nodes through the registry: loaders, text encoding, sampling and VAE, on the demo checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from diffusion.demo import DEMO_NAME
from engine.events import NodeProgress, NodeWarning
from runtime.build import build_runtime
from runtime.settings import RuntimeSettings
from tests.nodes.conftest import Runner


@pytest.fixture(scope="module")
def loaded(mreg, menv):
    run = Runner(mreg, menv)
    return run("CheckpointLoaderSimple", ckpt_name=DEMO_NAME)


def test_checkpoint_combo_lists_the_demo(mreg) -> None:
    schema = mreg.get("CheckpointLoaderSimple").schema()
    assert schema["input"]["required"]["ckpt_name"][0] == [DEMO_NAME]
    assert schema["output"] == ["MODEL", "CLIP", "VAE"]


def test_widget_order_matches_the_ecosystem(mreg) -> None:
    order = mreg.get("KSampler").schema()["input_order"]["required"]
    assert order == [
        "model",
        "seed",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "positive",
        "negative",
        "latent_image",
        "denoise",
    ]
    adv = mreg.get("KSamplerAdvanced").schema()["input_order"]["required"]
    assert adv == [
        "model",
        "add_noise",
        "noise_seed",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "positive",
        "negative",
        "latent_image",
        "start_at_step",
        "end_at_step",
        "return_with_leftover_noise",
    ]
    assert mreg.get("KSampler").schema()["input"]["required"]["seed"][1]["control_after_generate"] is True
    assert mreg.get("CLIPTextEncode").schema()["input_order"]["required"] == ["text", "clip"]


def test_txt2img_end_to_end(mreg, menv, loaded) -> None:
    run = Runner(mreg, menv)
    model, clip, vae = loaded
    pos = run("CLIPTextEncode", text="a (red:1.2) fox embedding:nothere", clip=clip)
    neg = run("CLIPTextEncode", text="blurry", clip=clip)
    assert any(isinstance(e, NodeWarning) and "nothere" in e.message for e in run.events)
    latent = run("EmptyLatentImage", width=64, height=64, batch_size=1)
    out = run(
        "KSampler",
        model=model,
        seed=5,
        steps=3,
        cfg=7.0,
        sampler_name="euler",
        scheduler="normal",
        positive=pos,
        negative=neg,
        latent_image=latent,
        denoise=1.0,
    )
    progress = [e for e in run.events if isinstance(e, NodeProgress)]
    assert [(e.value, e.max) for e in progress] == [(1, 3), (2, 3), (3, 3)]
    assert progress[0].preview is not None and progress[0].preview.data[:2] == b"\xff\xd8"
    image = run("VAEDecode", samples=out, vae=vae)
    assert image.shape == (1, 64, 64, 3) and image.dtype == torch.float32
    again = run(
        "KSamplerAdvanced",
        model=model,
        add_noise="enable",
        noise_seed=5,
        steps=3,
        cfg=7.0,
        sampler_name="euler",
        scheduler="normal",
        positive=pos,
        negative=neg,
        latent_image=latent,
        start_at_step=0,
        end_at_step=10000,
        return_with_leftover_noise="disable",
    )
    assert torch.equal(again["samples"], out["samples"])


def test_clip_set_last_layer(mreg, menv, loaded) -> None:
    run = Runner(mreg, menv)
    _model, clip, _vae = loaded
    skipped = run("CLIPSetLastLayer", clip=clip, stop_at_clip_layer=-2)
    a = run("CLIPTextEncode", text="a cat", clip=clip)[0][0]
    b = run("CLIPTextEncode", text="a cat", clip=skipped)[0][0]
    assert not torch.allclose(a, b)


def test_vae_nodes(mreg, menv, loaded) -> None:
    run = Runner(mreg, menv)
    _model, _clip, vae = loaded
    image = torch.rand(1, 70, 64, 3)
    latent = run("VAEEncode", pixels=image, vae=vae)
    assert latent["samples"].shape == (1, 4, 8, 8)
    tiled = run("VAEDecodeTiled", samples={"samples": torch.randn(1, 4, 24, 24)}, vae=vae, tile_size=128, overlap=32)
    assert tiled.shape == (1, 192, 192, 3)
    enc_tiled = run("VAEEncodeTiled", pixels=torch.rand(1, 128, 128, 3), vae=vae, tile_size=64, overlap=16)
    assert enc_tiled["samples"].shape == (1, 4, 16, 16)
    mask = torch.zeros(1, 64, 64)
    mask[:, 10:20, 10:20] = 1
    inpaint = run("VAEEncodeForInpaint", pixels=torch.rand(1, 64, 64, 3), vae=vae, mask=mask, grow_mask_by=6)
    assert inpaint["noise_mask"].shape == (1, 1, 64, 64)
    assert float(inpaint["noise_mask"][0, 0, 5, 5]) == 1.0 and float(inpaint["noise_mask"][0, 0, 40, 40]) == 0.0


def test_missing_checkpoint_names_the_input(mreg, menv) -> None:
    run = Runner(mreg, menv)
    with pytest.raises(FileNotFoundError, match=r"ckpt_name: 'absent\.safetensors'"):
        run("CheckpointLoaderSimple", ckpt_name="absent.safetensors")


def test_fingerprint_follows_the_file(mreg, menv) -> None:
    spec = mreg.get("CheckpointLoaderSimple")
    path = menv.folders.model_path("checkpoints", DEMO_NAME)
    before = spec.fingerprint({"ckpt_name": DEMO_NAME})
    assert before == spec.fingerprint({"ckpt_name": DEMO_NAME})
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert spec.fingerprint({"ckpt_name": DEMO_NAME}) != before


def test_build_runtime_writes_the_demo_only_into_an_empty_folder(tmp_path: Path) -> None:
    runtime = build_runtime(RuntimeSettings(base_directory=tmp_path, cpu=True))
    assert runtime.folders.list_models("checkpoints") == [DEMO_NAME]
    assert "KSampler" in runtime.registry and runtime.env.force_cpu
    other = tmp_path / "b"
    (other / "models" / "checkpoints").mkdir(parents=True)
    (other / "models" / "checkpoints" / "mine.safetensors").write_bytes(b"x")
    runtime = build_runtime(RuntimeSettings(base_directory=other))
    assert runtime.folders.list_models("checkpoints") == ["mine.safetensors"]


def test_diffusers_loader_lists_and_loads_pipeline_folders(tmp_path: Path, mreg, menv) -> None:
    from diffusion.tiny import build_tiny, tiny_spec

    modules = build_tiny(tiny_spec("sd1"), seed=1)
    root = menv.folders.model_dirs("checkpoints")[0].parent / "diffusers" / "tiny-pipe"
    root.mkdir(parents=True)
    (root / "model_index.json").write_text("{}")
    modules.unet.save_pretrained(root / "unet")
    modules.vae.save_pretrained(root / "vae")
    modules.text[0].save_pretrained(root / "text_encoder")
    spec = mreg.get("DiffusersLoader")
    assert spec.schema()["input"]["required"]["model_path"][0] == ["tiny-pipe"]
    model, clip, vae = Runner(mreg, menv)("DiffusersLoader", model_path="tiny-pipe")
    assert model.family == "sd1" and clip.encode("a").cond.shape == (1, 77, 32) and vae is not None
    with pytest.raises(ValueError, match="model_path"):
        Runner(mreg, menv)("DiffusersLoader", model_path="../escape")


def test_outputs_are_ordinary_tensors(mreg, menv, loaded) -> None:
    """Downstream nodes may modify images and latents in place: no inference-mode tensors leave the model layer."""
    run = Runner(mreg, menv)
    _model, clip, vae = loaded
    image = run("VAEDecode", samples={"samples": torch.zeros(1, 4, 8, 8)}, vae=vae)
    cond = run("CLIPTextEncode", text="a", clip=clip)[0][0]
    assert not image.is_inference() and not cond.is_inference()
    image.mul_(2)
    cond.add_(1)


TXT2IMG = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": DEMO_NAME}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "model": ["4", 0],
            "seed": 1,
            "steps": 2,
            "cfg": 7.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
            "denoise": 1.0,
        },
    },
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "loom"}},
}


def test_txt2img_through_the_executor(mreg, menv) -> None:
    executor = pytest.importorskip("engine.executor", reason="the executor has not landed on this branch yet")
    validate = pytest.importorskip("engine.validate")
    workflow = pytest.importorskip("engine.workflow").parse_api(TXT2IMG)
    result = validate.validate(workflow, mreg)
    assert result.ok, result.to_response()
    outcome = executor.Executor(mreg, env=menv).run(workflow, outputs=result.outputs, prompt_id="t2i")
    assert outcome.status == "success", outcome.error
    images = outcome.outputs["9"]["images"]
    assert (menv.folders.output / images[0]["subfolder"] / images[0]["filename"]).is_file()


def test_sdxl_checkpoint_with_two_prompts(mreg, menv, loaded) -> None:
    from diffusion.tiny import build_tiny, tiny_spec, write_checkpoint

    write_checkpoint(menv.folders.model_dirs("checkpoints")[0] / "tiny-xl.safetensors", build_tiny(tiny_spec("sdxl")))
    run = Runner(mreg, menv)
    model, clip, _vae = run("CheckpointLoaderSimple", ckpt_name="tiny-xl.safetensors")
    assert model.family == "sdxl"
    cond = run(
        "CLIPTextEncodeSDXL",
        width=1024,
        height=768,
        crop_w=0,
        crop_h=0,
        target_width=1024,
        target_height=768,
        text_g="a cat",
        clip=clip,
        text_l=" ".join(["cat"] * 100),
    )
    tensor, extra = cond[0]
    assert tensor.shape == (1, 154, 64) and extra["pooled_output"].shape == (1, 32) and extra["height"] == 768
    plain = run("CLIPTextEncode", text="", clip=clip)
    out = run(
        "KSampler",
        model=model,
        seed=1,
        steps=1,
        cfg=5.0,
        sampler_name="euler",
        scheduler="karras",
        positive=cond,
        negative=plain,
        latent_image={"samples": torch.zeros(1, 4, 8, 8)},
        denoise=1.0,
    )
    assert bool(torch.isfinite(out["samples"]).all())
    with pytest.raises(ValueError, match="SDXL"):
        run(
            "CLIPTextEncodeSDXL",
            width=1,
            height=1,
            crop_w=0,
            crop_h=0,
            target_width=1,
            target_height=1,
            text_g="a",
            clip=loaded[1],
            text_l="b",
        )
    order = mreg.get("CLIPTextEncodeSDXL").schema()["input_order"]["required"]
    assert order[0] == "clip" and order[-2:] == ["text_g", "text_l"]  # the reference's order


def test_checkpoint_loader_with_config(mreg, menv, loaded) -> None:
    run = Runner(mreg, menv)
    choices = mreg.get("CheckpointLoader").schema()["input"]["required"]["config_name"][0]
    assert "v1-inference.yaml" in choices and "v2-inference-v.yaml" in choices  # the stock names, without files
    model, clip, vae = run("CheckpointLoader", config_name="v1-inference.yaml", ckpt_name=DEMO_NAME)
    assert model.prediction == loaded[0].prediction == "eps"
    for a, b in zip(model.unet.state_dict().values(), loaded[0].unet.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(
        run("CLIPTextEncode", text="a cat", clip=clip)[0][0], run("CLIPTextEncode", text="a cat", clip=loaded[1])[0][0]
    )
    assert type(vae) is type(loaded[2])
    # a config file in models/configs is read: v-prediction and the penultimate text encoder layer
    configs = menv.folders.model_dirs("configs")[0]
    (configs / "mine.yaml").write_text(
        "model:\n  params:\n    parameterization: v\n    cond_stage_config:\n"
        "      params:\n        layer: hidden\n        layer_idx: -2\n"
    )
    assert "mine.yaml" in mreg.get("CheckpointLoader").schema()["input"]["required"]["config_name"][0]
    v_model, v_clip, _ = run("CheckpointLoader", config_name="mine.yaml", ckpt_name=DEMO_NAME)
    assert v_model.prediction == "v" and loaded[0].prediction == "eps"  # the cached base is untouched
    skip = run("CLIPSetLastLayer", clip=loaded[1], stop_at_clip_layer=-2)
    assert torch.equal(
        run("CLIPTextEncode", text="a cat", clip=v_clip)[0][0], run("CLIPTextEncode", text="a cat", clip=skip)[0][0]
    )
    stock_skip = run("CheckpointLoader", config_name="v1-inference_clip_skip_2.yaml", ckpt_name=DEMO_NAME)[1]
    assert stock_skip.layer == -2
    (configs / "broken.yaml").write_text("just: text\n")
    with pytest.raises(ValueError, match=r"config_name: broken\.yaml: not a latent-diffusion config"):
        run("CheckpointLoader", config_name="broken.yaml", ckpt_name=DEMO_NAME)
    with pytest.raises(ValueError, match=r"config_name: 'nope\.yaml' is neither a file"):
        run("CheckpointLoader", config_name="nope.yaml", ckpt_name=DEMO_NAME)


def test_sdxl_refiner_time_ids_carry_the_aesthetic_score(mreg, menv) -> None:
    from dataclasses import replace

    from diffusion.configs import family_defaults
    from diffusion.tiny import build_tiny, tiny_spec, write_checkpoint

    spec = tiny_spec("sdxl")
    time_dim = family_defaults("sdxl")["addition_time_embed_dim"]
    refiner = replace(spec, unet=replace(spec.unet, adm_in_channels=spec.text[-1].projection_dim + 5 * time_dim))
    write_checkpoint(menv.folders.model_dirs("checkpoints")[0] / "tiny-refiner.safetensors", build_tiny(refiner))
    run = Runner(mreg, menv)
    model, clip, _vae = run("CheckpointLoaderSimple", ckpt_name="tiny-refiner.safetensors")
    positive = run("CLIPTextEncodeSDXLRefiner", ascore=7.5, width=640, height=512, text="a cat", clip=clip)
    assert positive[0][1]["aesthetic_score"] == 7.5 and positive[0][1]["width"] == 640
    negative = run("CLIPTextEncode", text="", clip=clip)
    seen: list[torch.Tensor] = []

    def capture(_module, _args, kwargs):
        seen.append(kwargs["added_cond_kwargs"]["time_ids"].clone())

    handle = model.unet.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        run(
            "KSampler",
            model=model,
            seed=1,
            steps=1,
            cfg=2.0,
            sampler_name="euler",
            scheduler="normal",
            positive=positive,
            negative=negative,
            latent_image={"samples": torch.zeros(1, 4, 8, 8)},
            denoise=1.0,
        )
    finally:
        handle.remove()
    rows = {tuple(r.tolist()) for ids in seen for r in ids}
    # (height, width, crop_h, crop_w, aesthetic score): the prompt's score, 2.5 for a negative without one
    assert (512.0, 640.0, 0.0, 0.0, 7.5) in rows and (64.0, 64.0, 0.0, 0.0, 2.5) in rows


def _sample(run: Runner, model, clip) -> torch.Tensor:
    cond = run("CLIPTextEncode", text="a cat", clip=clip)
    return run(
        "KSampler",
        model=model,
        seed=3,
        steps=2,
        cfg=4.0,
        sampler_name="euler",
        scheduler="normal",
        positive=cond,
        negative=run("CLIPTextEncode", text="", clip=clip),
        latent_image={"samples": torch.zeros(1, 4, 8, 8)},
        denoise=1.0,
    )["samples"]


def test_hypernetwork_loader(mreg, menv, loaded) -> None:
    from tests.diffusion.tiny_hypernetworks import write_pt

    model, clip, _vae = loaded
    run = Runner(mreg, menv)
    folder = menv.folders.model_dirs("hypernetworks")[0]
    context, inner = model.unet.config.cross_attention_dim, model.unet.config.block_out_channels[-1]
    write_pt(folder / "zero.pt", {context: 1, inner: 2}, zero_out=True)
    write_pt(folder / "style.pt", {context: 1, inner: 2})
    assert mreg.get("HypernetworkLoader").schema()["input"]["required"]["hypernetwork_name"][0] == [
        "style.pt",
        "zero.pt",
    ]
    plain = _sample(run, model, clip)
    zero = run("HypernetworkLoader", model=model, hypernetwork_name="zero.pt", strength=1.0)
    assert torch.equal(_sample(run, zero, clip), plain)
    styled = run("HypernetworkLoader", model=model, hypernetwork_name="style.pt", strength=1.0)
    assert styled is not model and styled.unet is model.unet and not model.unet_patches  # the base is shared
    assert not torch.allclose(_sample(run, styled, clip), plain)
    assert torch.equal(_sample(run, model, clip), plain)  # and untouched
    (folder / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"hypernetwork_name: junk\.pt: not a readable hypernetwork"):
        run("HypernetworkLoader", model=model, hypernetwork_name="junk.pt", strength=1.0)


def _flux_workflow(loaders: dict[str, dict], model: list, clip: list, vae: list, prefix: str) -> dict:
    return loaders | {
        "5": {"class_type": "CLIPTextEncodeFlux",
              "inputs": {"clip_l": "a red fox", "t5xxl": "a red fox in the snow", "guidance": 3.5, "clip": clip}},
        "6": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["5", 0]}},
        "7": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
        "8": {"class_type": "KSampler",
              "inputs": {"seed": 3, "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple",
                         "denoise": 1.0, "model": model, "positive": ["5", 0], "negative": ["6", 0],
                         "latent_image": ["7", 0]}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": vae}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": prefix}},
    }  # fmt: skip


def _run_workflow(mreg, menv, api: dict, prompt_id: str) -> Path:
    from engine import executor, validate, workflow

    parsed = workflow.parse_api(api)
    result = validate.validate(parsed, mreg)
    assert result.ok, result.to_response()
    outcome = executor.Executor(mreg, env=menv).run(parsed, outputs=result.outputs, prompt_id=prompt_id)
    assert outcome.status == "success", outcome.error
    image = outcome.outputs["10"]["images"][0]
    return menv.folders.output / image["subfolder"] / image["filename"]


def test_a_flux_pipeline_folder_runs_a_workflow_like_its_single_files(tmp_path: Path, mreg, menv) -> None:
    """DiffusersLoader on a FLUX.1-dev folder (sharded transformer) gives the image UNETLoader, DualCLIPLoader and
    VAELoader give on the same weights as single files."""
    import shutil

    import numpy as np
    from PIL import Image

    from tests.diffusion.tiny_dit_folders import write_flux_pipeline

    pipe = write_flux_pipeline(tmp_path / "hub", shards=2)
    folders = menv.folders
    shutil.copytree(pipe.folder, folders.model_dirs("checkpoints")[0].parent / "diffusers" / "FLUX.1-dev-tiny")
    names = {"model": "diffusion_models", "clip_l": "text_encoders", "t5xxl": "text_encoders", "vae": "vae"}
    for part, kind in names.items():
        shutil.copy(pipe.files[part], folders.model_dirs(kind)[0] / f"tiny-flux-{pipe.files[part].name}")
    tokenizer = pipe.files["t5xxl"].with_name("t5xxl.tokenizer.json")
    shutil.copy(tokenizer, folders.model_dirs("text_encoders")[0] / "tiny-flux-t5xxl.tokenizer.json")
    assert "FLUX.1-dev-tiny" in mreg.get("DiffusersLoader").schema()["input"]["required"]["model_path"][0]

    folder_api = _flux_workflow({"1": {"class_type": "DiffusersLoader", "inputs": {"model_path": "FLUX.1-dev-tiny"}}},
                                ["1", 0], ["1", 1], ["1", 2], "flux-folder")  # fmt: skip
    files_api = _flux_workflow(
        {
            "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny-flux-model.safetensors",
                                                         "weight_dtype": "default"}},
            "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "tiny-flux-clip_l.safetensors",
                                                             "clip_name2": "tiny-flux-t5xxl.safetensors",
                                                             "type": "flux"}},
            "3": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny-flux-ae.safetensors"}},
        },
        ["1", 0], ["2", 0], ["3", 0], "flux-files",
    )  # fmt: skip
    from_folder = np.asarray(Image.open(_run_workflow(mreg, menv, folder_api, "flux-folder")))
    from_files = np.asarray(Image.open(_run_workflow(mreg, menv, files_api, "flux-files")))
    assert from_folder.shape == (48, 64, 3) and from_folder.std() > 0 and np.array_equal(from_folder, from_files)
