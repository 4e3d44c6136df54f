from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from engine.context import NodeContext, RunControl
from engine.events import NodeWarning
from tests.diffusion.tiny_lora_models import tiny_clip, tiny_unet, unet_inputs


@dataclass(eq=False)
class Model:
    """The part of the MODEL socket value the LoRA nodes use (a UNet and `with_unet`)."""

    unet: nn.Module

    def with_unet(self, unet: nn.Module) -> "Model":
        return replace(self, unet=unet)


@dataclass(eq=False)
class Unit:
    module: nn.Module


@dataclass(eq=False)
class Clip:
    """The part of the CLIP socket value the LoRA nodes use (encoder units holding transformers modules)."""

    units: tuple[Unit, ...]
    extra: dict = field(default_factory=dict)


def _write_lora(path: Any, unet: nn.Module, clip: nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    sd = {}
    for prefix, model in (("lora_unet_", unet), ("lora_te_text_model_", clip)):
        for name, layer in model.named_modules():
            if isinstance(layer, nn.Linear):
                stem = prefix + name.replace(".", "_")
                sd[stem + ".lora_down.weight"] = torch.randn(2, layer.in_features, generator=gen) * 0.2
                sd[stem + ".lora_up.weight"] = torch.randn(layer.out_features, 2, generator=gen) * 0.2
    sd["lora_unet_not_a_layer.lora_down.weight"] = torch.zeros(2, 2)
    sd["lora_unet_not_a_layer.lora_up.weight"] = torch.zeros(2, 2)
    save_file(sd, path)


def _call(registry: Any, env: Any, class_type: str, events: list, **inputs: Any) -> Any:
    spec = registry.get(class_type)
    ctx = NodeContext("p", "7", "7", class_type, events.append, RunControl(), env=env)
    return spec.invoke({**inputs, "__context__": ctx})


def test_lora_loader_patches_copies_warns_and_fingerprints_the_file(registry: Any, env: Any) -> None:
    unet, clip = tiny_unet(), tiny_clip()
    folder = env.folders.model_dirs("loras")[0]
    _write_lora(folder / "style.safetensors", unet, clip)
    model, text = Model(unet), Clip((Unit(clip),))
    inputs = unet_inputs()
    with torch.no_grad():
        before = unet(**inputs).sample
    events: list = []
    new_model, new_clip = _call(
        registry,
        env,
        "LoraLoader",
        events,
        model=model,
        clip=text,
        lora_name="style.safetensors",
        strength_model=1.0,
        strength_clip=-0.5,
    )
    assert new_model is not model and new_clip is not text
    assert new_clip.units[0].module is not clip
    with torch.no_grad():
        assert not torch.equal(new_model.unet(**inputs).sample, before)
        assert torch.equal(unet(**inputs).sample, before)
    warnings = [e for e in events if isinstance(e, NodeWarning)]
    assert len(warnings) == 1 and "lora_unet_not_a_layer.lora_down.weight" in warnings[0].message
    (only,) = _call(
        registry, env, "LoraLoaderModelOnly", [], model=model, lora_name="style.safetensors", strength_model=0.0
    )
    assert only is model
    spec = registry.get("LoraLoader")
    fp = spec.fingerprint({"lora_name": "style.safetensors", "strength_model": 1.0})
    assert fp[1] == (folder / "style.safetensors").stat().st_size
    assert "style.safetensors" in spec.schema()["input"]["required"]["lora_name"][0]


def test_missing_lora_names_the_input(registry: Any, env: Any) -> None:
    with pytest.raises(FileNotFoundError, match="lora_name"):
        _call(
            registry,
            env,
            "LoraLoaderModelOnly",
            [],
            model=Model(tiny_unet()),
            lora_name="x.safetensors",
            strength_model=1.0,
        )
