"""GLIGENLoader and GLIGENTextBoxApply on the demo checkpoint, and a workflow with this family's nodes through the
executor."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from diffusion.demo import DEMO_NAME
from tests.diffusion.tiny_gligen import write_gligen
from tests.diffusion.tiny_hypernetworks import write_pt
from tests.nodes.conftest import Runner


@pytest.fixture(scope="module")
def demo(mreg: Any, menv: Any) -> tuple:
    run = Runner(mreg, menv)
    model, clip, _vae = run("CheckpointLoaderSimple", ckpt_name=DEMO_NAME)
    folder = menv.folders.model_dirs("gligen")[0]
    width = clip.units[0].arch.hidden
    write_gligen(folder / "boxes.safetensors", model.unet, width, gate=0.8)
    write_gligen(folder / "closed.safetensors", model.unet, width, gate=0.0)
    return run, model, clip


def _sample(run: Runner, model: Any, positive: Any, negative: Any) -> torch.Tensor:
    return run(
        "KSampler", model=model, seed=2, steps=2, cfg=4.0, sampler_name="euler", scheduler="normal",
        positive=positive, negative=negative, latent_image={"samples": torch.zeros(1, 4, 8, 8)}, denoise=1.0,
    )["samples"]  # fmt: skip


def test_text_boxes_ground_phrases_without_touching_the_model(demo: tuple, mreg: Any) -> None:
    run, model, clip = demo
    assert mreg.get("GLIGENLoader").schema()["input"]["required"]["gligen_name"][0] == [
        "boxes.safetensors",
        "closed.safetensors",
    ]
    (gligen,) = run("GLIGENLoader", gligen_name="boxes.safetensors")
    positive, negative = run("CLIPTextEncode", text="a park", clip=clip), run("CLIPTextEncode", text="", clip=clip)
    box = {"clip": clip, "gligen_textbox_model": gligen, "width": 32, "height": 24, "x": 8, "y": 16}
    (one,) = run("GLIGENTextBoxApply", conditioning_to=positive, text="a dog", **box)
    (two,) = run("GLIGENTextBoxApply", conditioning_to=one, text="a ball", **{**box, "x": 40})
    assert "gligen" not in positive[0][1] and len(one[0][1]["gligen"].boxes) == 1
    assert [(b.height, b.width, b.y, b.x) for b in two[0][1]["gligen"].boxes] == [(3, 4, 2, 1), (3, 4, 2, 5)]
    assert torch.equal(two[0][0], positive[0][0])
    plain = _sample(run, model, positive, negative)
    grounded = _sample(run, model, two, negative)
    assert not torch.allclose(grounded, plain)
    assert torch.equal(_sample(run, model, positive, negative), plain)  # the cached model is unchanged
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.unet.modules())
    (closed,) = run("GLIGENLoader", gligen_name="closed.safetensors")
    shut_box = {**box, "gligen_textbox_model": closed}
    (shut,) = run("GLIGENTextBoxApply", conditioning_to=positive, text="a dog", **shut_box)
    assert torch.equal(_sample(run, model, shut, negative), plain)  # closed gates (tanh 0) add nothing
    with pytest.raises(ValueError, match="gligen_textbox_model: expected a GLIGEN model"):
        run("GLIGENTextBoxApply", conditioning_to=positive, text="x", **{**box, "gligen_textbox_model": object()})


def test_a_bad_file_names_the_input(demo: tuple, menv: Any) -> None:
    run = demo[0]
    (menv.folders.model_dirs("gligen")[0] / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="gligen_name"):
        run("GLIGENLoader", gligen_name="junk.safetensors")


WORKFLOW = {
    "1": {"class_type": "CheckpointLoader", "inputs": {"config_name": "v1-inference.yaml", "ckpt_name": DEMO_NAME}},
    "2": {
        "class_type": "HypernetworkLoader",
        "inputs": {"model": ["1", 0], "hypernetwork_name": "h.pt", "strength": 0.5},
    },
    "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a park", "clip": ["1", 1]}},
    "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
    "5": {"class_type": "GLIGENLoader", "inputs": {"gligen_name": "boxes.safetensors"}},
    "6": {
        "class_type": "GLIGENTextBoxApply",
        "inputs": {
            "conditioning_to": ["3", 0],
            "clip": ["1", 1],
            "gligen_textbox_model": ["5", 0],
            "text": "a dog",
            "width": 32,
            "height": 32,
            "x": 0,
            "y": 0,
        },
    },
    "7": {"class_type": "GITSScheduler", "inputs": {"coeff": 1.2, "steps": 2, "denoise": 1.0}},
    "8": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    "9": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "10": {
        "class_type": "SamplerCustom",
        "inputs": {
            "model": ["2", 0],
            "add_noise": True,
            "noise_seed": 1,
            "cfg": 4.0,
            "positive": ["6", 0],
            "negative": ["4", 0],
            "sampler": ["8", 0],
            "sigmas": ["7", 0],
            "latent_image": ["9", 0],
        },
    },
    "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["1", 2]}},
    "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "grounded"}},
}


def test_a_workflow_with_config_hypernetwork_gligen_and_gits_runs(demo: tuple, mreg: Any, menv: Any) -> None:
    from engine import executor, validate, workflow

    model = demo[1]
    context, inner = model.unet.config.cross_attention_dim, model.unet.config.block_out_channels[-1]
    write_pt(menv.folders.model_dirs("hypernetworks")[0] / "h.pt", {context: 1, inner: 2})
    parsed = workflow.parse_api(WORKFLOW)
    result = validate.validate(parsed, mreg)
    assert result.ok, result.to_response()
    outcome = executor.Executor(mreg, env=menv).run(parsed, outputs=result.outputs, prompt_id="gligen")
    assert outcome.status == "success", outcome.error
    image = outcome.outputs["12"]["images"][0]
    assert (menv.folders.output / image["subfolder"] / image["filename"]).is_file()
