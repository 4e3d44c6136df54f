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


# -- end to end: IP-Adapter with LoRA, ControlNet and an area prompt in one sampling run --------------------------


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from PIL import Image

    from tests.nodes.tiny_flows import Flows, kohya_lora, ldm_controlnet, matching_controlnet

    flows = Flows.create(tmp_path_factory.mktemp("loom"))
    save_file(kohya_lora(flows.modules, 1), flows.folder("loras") / "lora.safetensors")
    save_file(ldm_controlnet(matching_controlnet(flows.modules.unet, 1)), flows.folder("controlnet") / "cn.safetensors")
    save_file(tiny_vision_state(), str(flows.folder("clip_vision") / "vit.safetensors"))
    adapter = flat(tiny_ip_adapter(flows.modules.unet, "linear", 24, seed=3))
    save_file(adapter, str(flows.folder("ipadapter") / "ip-adapter_sd15.safetensors"))
    gen = torch.Generator().manual_seed(5)
    for name in ("hint.png", "reference.png"):
        pixels = (torch.rand(48, 48, 3, generator=gen) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(flows.env.folders.input / name)
    return flows


def combined(
    lora: bool = False, control: bool = False, area: bool = False, ip_weight: float | None = None, prefix: str = "run"
) -> dict[str, Any]:
    """txt2img on a 128x64 latent with any of: a LoRA, a ControlNet, a second prompt on the right half, and an
    IP-Adapter (at `ip_weight`) between the model and the sampler."""
    from tests.nodes.tiny_flows import SAMPLER, txt2img

    controlnet = {"loader": "ControlNetLoader", "name": "cn.safetensors", "strength": 1.0}
    flow = txt2img(
        loras=(("lora.safetensors", 1.0, 1.0),) if lora else (),
        control=controlnet | {"start_percent": 0.0, "end_percent": 1.0} if control else None,
        prefix=prefix,
    )
    flow["5"]["inputs"]["width"] = 128
    sampler = flow[SAMPLER]["inputs"]
    if area:
        clip = flow["3"]["inputs"]["clip"]
        flow["area_text"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": clip}}
        flow["area"] = {
            "class_type": "ConditioningSetArea",
            "inputs": {"conditioning": ["area_text", 0], "width": 64, "height": 64, "x": 64, "y": 0, "strength": 1.0},
        }
        flow["both"] = {
            "class_type": "ConditioningCombine",
            "inputs": {"conditioning_1": sampler["positive"], "conditioning_2": ["area", 0]},
        }
        sampler["positive"] = ["both", 0]
    if ip_weight is not None:
        flow["vision"] = {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "vit.safetensors"}}
        flow["ipa"] = {
            "class_type": "IPAdapterModelLoader",
            "inputs": {"ipadapter_file": "ip-adapter_sd15.safetensors"},
        }
        flow["ref"] = {"class_type": "LoadImage", "inputs": {"image": "reference.png"}}
        flow["apply_ipa"] = {
            "class_type": "IPAdapterApply",
            "inputs": {
                "ipadapter": ["ipa", 0],
                "clip_vision": ["vision", 0],
                "image": ["ref", 0],
                "model": sampler["model"],
                "weight": ip_weight,
                "noise": 0.0,
                "weight_type": "linear",
                "start_at": 0.0,
                "end_at": 1.0,
            },
        }
        sampler["model"] = ["apply_ipa", 0]
    return flow


def test_ip_adapter_with_lora_controlnet_and_an_area_in_one_run(flows: Any) -> None:
    parts = {"lora": True, "control": True, "area": True}
    everything = flows.run(combined(**parts, ip_weight=0.8, prefix="all")).latent
    assert torch.isfinite(everything).all()
    without = flows.run(combined(**parts, prefix="without")).latent
    assert not torch.allclose(everything, without, atol=1e-3)  # the adapter acts beside the others
    for alone in ({"lora": True}, {"control": True}, {"area": True}, {}):
        single = flows.run(combined(**alone, ip_weight=0.8, prefix="alone")).latent
        assert not torch.allclose(everything, single, atol=1e-3), alone
    zero = flows.run(combined(**parts, ip_weight=0.0, prefix="zero")).latent
    assert torch.equal(zero, without)  # weight 0 is the same graph without the adapter, bit for bit


def test_lora_after_the_adapter_keeps_it_and_the_base_model_is_untouched(flows: Any) -> None:
    from tests.nodes.tiny_flows import LOADER, SAMPLER

    base_flow = combined(prefix="base")
    base = flows.run(base_flow).latent
    lora_first = flows.run(combined(lora=True, ip_weight=0.8, prefix="lora_first")).latent
    # the same LoRA applied to the adapted model: the adapter's processors survive the LoRA's copy of the UNet
    flow = combined(ip_weight=0.8, prefix="lora_last")
    flow["lora_last"] = {
        "class_type": "LoraLoader",
        "inputs": {
            "model": ["apply_ipa", 0],
            "clip": [LOADER, 1],
            "lora_name": "lora.safetensors",
            "strength_model": 1.0,
            "strength_clip": 0.0,
        },
    }
    flow[SAMPLER]["inputs"]["model"] = ["lora_last", 0]
    lora_last = flows.run(flow).latent
    only_unet_lora = combined(lora=True, ip_weight=0.8, prefix="lora_unet")
    only_unet_lora["lora0"]["inputs"]["strength_clip"] = 0.0
    expected = flows.run(only_unet_lora).latent
    assert not torch.equal(lora_first, base)
    assert torch.allclose(lora_last, expected, rtol=1e-4, atol=1e-4)
    flows.keep_only_the_checkpoint(base_flow)
    rerun = flows.run(base_flow)
    assert LOADER in rerun.outcome.cached and SAMPLER in rerun.outcome.executed
    assert torch.equal(rerun.latent, base)  # the cached base model is untouched by every adapter run
