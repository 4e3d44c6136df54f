from __future__ import annotations

from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from diffusion.ip_adapter import IPAttnProcessor, IPTokens
from diffusion.tiny import build_tiny, tiny_spec, write_checkpoint
from tests.diffusion.tiny_image_models import flat, tiny_ip_adapter, tiny_vision_state


@pytest.fixture
def loaded(run: Any, env: Any) -> tuple[Any, Any, Any]:
    write_checkpoint(env.folders.model_dirs("checkpoints")[0] / "tiny.safetensors", build_tiny(tiny_spec("sd1")))
    model = run("CheckpointLoaderSimple", ckpt_name="tiny.safetensors")[0]
    save_file(tiny_vision_state(), str(env.folders.model_dirs("clip_vision")[0] / "vit.safetensors"))
    adapter = flat(tiny_ip_adapter(model.unet, "linear", 24))
    save_file(adapter, str(env.folders.model_dirs("ipadapter")[0] / "ip-adapter_sd15.safetensors"))
    (vision,) = run("CLIPVisionLoader", clip_name="vit.safetensors")
    (ipadapter,) = run("IPAdapterModelLoader", ipadapter_file="ip-adapter_sd15.safetensors")
    return model, vision, ipadapter


def _processors(model: Any) -> list[IPAttnProcessor]:
    return [p for p in model.unet.attn_processors.values() if isinstance(p, IPAttnProcessor)]


def test_apply_and_encoded_apply(run: Any, loaded: tuple[Any, Any, Any]) -> None:
    model, vision, ipadapter = loaded
    assert ipadapter.arch.variant == "base"
    image = torch.rand(2, 32, 32, 3)
    common = dict(weight_type="linear", start_at=0.0, end_at=1.0)
    (same,) = run(
        "IPAdapterApply",
        ipadapter=ipadapter,
        clip_vision=vision,
        image=image,
        model=model,
        weight=0.0,
        noise=0.0,
        **common,
    )
    assert same is model
    (adapted,) = run(
        "IPAdapterApply",
        ipadapter=ipadapter,
        clip_vision=vision,
        image=image,
        model=model,
        weight=0.8,
        noise=0.0,
        attn_mask=torch.ones(1, 8, 8),
        **common,
    )
    uses = _processors(adapted)
    assert uses and all(len(p.uses) == 1 and p.uses[0].weight == 0.8 for p in uses)
    assert uses[0].uses[0].tokens.positive.shape[1] == 8  # two images, four tokens each
    assert not _processors(model)
    (embeds,) = run(
        "IPAdapterEncoder",
        ipadapter=ipadapter,
        clip_vision=vision,
        image_1=image[:1],
        weight_1=1.0,
        noise=0.0,
        image_2=image[1:],
        weight_2=0.5,
    )
    assert isinstance(embeds, IPTokens) and embeds.positive.shape[1] == 8
    assert embeds.negative.shape == embeds.positive.shape
    (stacked,) = run(
        "IPAdapterApplyEncoded",
        ipadapter=ipadapter,
        embeds=embeds,
        model=adapted,
        weight=1.0,
        weight_type="ease out",
        start_at=0.0,
        end_at=0.5,
    )
    assert all(len(p.uses) == 2 for p in _processors(stacked))
    with pytest.raises(ValueError, match="start_at"):
        run(
            "IPAdapterApplyEncoded",
            ipadapter=ipadapter,
            embeds=embeds,
            model=model,
            weight=1.0,
            weight_type="linear",
            start_at=0.8,
            end_at=0.5,
        )


def test_loader_names_its_input(run: Any, env: Any) -> None:
    save_file({"x.weight": torch.zeros(1)}, str(env.folders.model_dirs("ipadapter")[0] / "other.safetensors"))
    with pytest.raises(ValueError, match="ipadapter_file"):
        run("IPAdapterModelLoader", ipadapter_file="other.safetensors")
