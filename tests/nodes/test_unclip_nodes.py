from __future__ import annotations

from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from diffusion.checkpoint import CheckpointError
from diffusion.tiny import build_tiny, tiny_spec, write_checkpoint
from diffusion.unclip import UnclipImage
from tests.diffusion.tiny_image_models import tiny_unclip_state


def _sample(run: Any, model: Any, positive: Any, negative: Any) -> torch.Tensor:
    latent = run("EmptyLatentImage", width=16, height=16, batch_size=1)
    inputs = dict(seed=1, steps=2, cfg=4.0, sampler_name="euler", scheduler="normal", denoise=1.0)
    out = run("KSampler", model=model, positive=positive, negative=negative, latent_image=latent, **inputs)
    return out["samples"]


def test_unclip_checkpoint_conditioning_and_stacking(run: Any, env: Any) -> None:
    save_file(tiny_unclip_state(), str(env.folders.model_dirs("checkpoints")[0] / "sd21-unclip-h.safetensors"))
    model, clip, vae, vision = run("unCLIPCheckpointLoader", ckpt_name="sd21-unclip-h.safetensors")
    assert vae is not None and model.extra["noise_augmentor"].dim == 24
    positive = run("CLIPTextEncode", clip=clip, text="a house")
    negative = run("CLIPTextEncode", clip=clip, text="")
    (encoded,) = run("CLIPVisionEncode", clip_vision=vision, image=torch.rand(1, 32, 32, 3), crop="center")
    (same,) = run(
        "unCLIPConditioning", conditioning=positive, clip_vision_output=encoded, strength=0.0, noise_augmentation=0.0
    )
    assert same is positive
    (one,) = run(
        "unCLIPConditioning", conditioning=positive, clip_vision_output=encoded, strength=1.0, noise_augmentation=0.2
    )
    (two,) = run(
        "unCLIPConditioning", conditioning=one, clip_vision_output=encoded, strength=0.5, noise_augmentation=0.0
    )
    assert one[0][1]["unclip_conditioning"] == [UnclipImage(encoded, 1.0, 0.2)]
    assert two[0][1]["unclip_conditioning"] == [UnclipImage(encoded, 1.0, 0.2), UnclipImage(encoded, 0.5, 0.0)]
    assert "unclip_conditioning" not in positive[0][1]
    plain = _sample(run, model, positive, negative)
    prompted = _sample(run, model, one, negative)
    stacked = _sample(run, model, two, negative)
    assert torch.isfinite(stacked).all()
    assert not torch.allclose(prompted, plain, atol=1e-4) and not torch.allclose(stacked, prompted, atol=1e-4)


def test_a_plain_checkpoint_is_refused_by_name(run: Any, env: Any) -> None:
    write_checkpoint(env.folders.model_dirs("checkpoints")[0] / "plain.safetensors", build_tiny(tiny_spec("sd1")))
    with pytest.raises(CheckpointError, match=r"ckpt_name: plain\.safetensors: not an unCLIP checkpoint"):
        run("unCLIPCheckpointLoader", ckpt_name="plain.safetensors")
