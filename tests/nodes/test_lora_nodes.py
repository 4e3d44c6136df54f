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

    def with_units(self, units: tuple[Unit, ...]) -> "Clip":
        return replace(self, units=units)


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


# -- end to end: a real tiny checkpoint and kohya-format LoRA files through the executor ---------------------------


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.nodes.tiny_flows import Flows, kohya_lora

    flows = Flows.create(tmp_path_factory.mktemp("loom"))
    folder = flows.folder("loras")
    a, b = kohya_lora(flows.modules, 1), kohya_lora(flows.modules, 2)
    save_file(a, folder / "a.safetensors")
    save_file(b, folder / "b.safetensors")
    # one file holding both: concatenating along the rank gives up_a @ down_a + up_b @ down_b
    both = {k: torch.cat([a[k], b[k]], dim=0 if k.endswith("down.weight") else 1) for k in a}
    save_file(both, folder / "a_plus_b.safetensors")
    return flows


def test_lora_end_to_end_cache_base_untouched_strength_and_stacking(flows: Any, monkeypatch: Any) -> None:
    import diffusion.lora
    from tests.nodes.tiny_flows import txt2img

    patches: list[int] = []
    real_apply = diffusion.lora.apply_patches

    def counting_apply(*args: Any, **kwargs: Any) -> Any:
        patches.append(1)
        return real_apply(*args, **kwargs)

    monkeypatch.setattr(diffusion.lora, "apply_patches", counting_apply)
    base_flow = txt2img(prefix="base")
    base = flows.run(base_flow).latent
    assert base is not None

    lora_flow = txt2img(loras=(("a.safetensors", 1.0, 1.0),), prefix="lora")
    first = flows.run(lora_flow)
    assert patches == [1] and "lora0" in first.outcome.executed
    assert not torch.equal(first.latent, base)
    warnings = [e for e in first.events if isinstance(e, NodeWarning)]
    assert [w.node for w in warnings] == ["lora0"]
    assert "lora_unet_not_a_layer.lora_down.weight" in warnings[0].message

    again = flows.run(lora_flow)  # the same workflow: everything is served from the cache
    assert again.outcome.executed == () and patches == [1]
    assert set(again.outcome.cached) == {"8", "9"}  # the outputs are served; nothing upstream is even visited

    reprompt = flows.run(txt2img(prompt="a blue fox", loras=(("a.safetensors", 1.0, 1.0),), prefix="lora"))
    executed = set(reprompt.outcome.executed)
    assert {"3", SAMPLER_ID, "7", "9"} <= executed and not executed & {"1", "lora0", "4"}
    assert "lora0" in reprompt.outcome.cached and patches == [1]  # a new prompt does not re-patch

    zero = flows.run(txt2img(loras=(("a.safetensors", 0.0, 0.0),), prefix="zero"))
    assert torch.equal(zero.latent, base)  # strength 0 is the base model, bit for bit

    stacked = flows.run(txt2img(loras=(("a.safetensors", 1.0, 1.0), ("b.safetensors", 1.0, 1.0)), prefix="ab"))
    combined = flows.run(txt2img(loras=(("a_plus_b.safetensors", 1.0, 1.0),), prefix="sum"))
    assert not torch.equal(stacked.latent, first.latent)
    gap = float((stacked.latent - combined.latent).norm() / (stacked.latent - first.latent).norm())
    assert gap < 1e-4  # stacked LoRAs add their deltas: the same result as one file holding both, up to rounding

    flows.keep_only_the_checkpoint(base_flow)
    rerun = flows.run(base_flow)
    assert "1" in rerun.outcome.cached and SAMPLER_ID in rerun.outcome.executed
    assert torch.equal(rerun.latent, base)  # the cached base model is untouched by every LoRA run


SAMPLER_ID = "6"


def test_missing_embedding_is_a_warning_event(flows: Any) -> None:
    from tests.nodes.tiny_flows import txt2img

    result = flows.run(txt2img(prompt="a fox, embedding:nowhere:1.2", prefix="emb"))
    warnings = [e for e in result.events if isinstance(e, NodeWarning)]
    assert [w.node for w in warnings] == ["3"]
    assert "'nowhere'" in warnings[0].message


def _random_lora(path: Any, model: Any, clip: Any, rank: int = 2) -> None:
    """A kohya-named LoRA of rank `rank` on every linear layer of the UNet and the text encoder."""
    gen = torch.Generator().manual_seed(3)
    sd = {}
    for prefix, module in (("lora_unet_", model.unet), ("lora_te_", clip.units[0].module)):
        for name, layer in module.named_modules():
            if isinstance(layer, nn.Linear):
                stem = prefix + name.replace(".", "_")
                sd[stem + ".lora_down.weight"] = torch.randn(rank, layer.in_features, generator=gen) * 0.1
                sd[stem + ".lora_up.weight"] = torch.randn(layer.out_features, rank, generator=gen) * 0.1
    save_file(sd, path)


def _unet_out(model: Any) -> torch.Tensor:
    gen = torch.Generator().manual_seed(5)
    channels = model.unet.config.in_channels
    x, context = (
        torch.randn(1, channels, 8, 8, generator=gen),
        torch.randn(1, 3, model.unet.config.cross_attention_dim, generator=gen),
    )
    with torch.no_grad():
        return model.unet(x, torch.tensor([500.0]), encoder_hidden_states=context).sample


def test_lora_save_of_a_model_difference_round_trips_through_lora_loader(mreg: Any, menv: Any) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    from diffusion.demo import DEMO_NAME
    from tests.nodes.conftest import Runner

    run = Runner(mreg, menv)
    base, clip, _vae = run("CheckpointLoaderSimple", ckpt_name=DEMO_NAME)
    loras = menv.folders.model_dirs("loras")[0]
    _random_lora(loras / "style.safetensors", base, clip)
    tuned, tuned_clip = run(
        "LoraLoader", model=base, clip=clip, lora_name="style.safetensors", strength_model=1.0, strength_clip=1.0
    )
    model_diff = run("ModelMergeSubtract", model1=tuned, model2=base, multiplier=1.0)
    clip_diff = run("CLIPMergeSubtract", clip1=tuned_clip, clip2=clip, multiplier=1.0)
    before = {k: v.clone() for k, v in base.unet.state_dict().items()}
    run(
        "LoraSave",
        filename_prefix="loras/extracted",
        rank=4,
        lora_type="standard",
        bias_diff=True,
        model_diff=model_diff,
        text_encoder_diff=clip_diff,
    )
    written = menv.folders.output / "loras" / "extracted_00001_.safetensors"
    tensors = load_file(written)
    assert any(k.startswith("diffusion_model.") and k.endswith(".lora_up.weight") for k in tensors)
    assert any(k.startswith("text_encoders.clip_l.transformer.text_model.") for k in tensors)
    assert all(v.dtype == torch.float16 for v in tensors.values())
    with safe_open(str(written), "pt") as f:
        meta = f.metadata()
    assert meta["modelspec.architecture"] == "stable-diffusion-v1/lora" and meta["ss_network_dim"] == "4"
    (loras / "extracted.safetensors").write_bytes(written.read_bytes())
    run.events.clear()
    again, again_clip = run(
        "LoraLoader", model=base, clip=clip, lora_name="extracted.safetensors", strength_model=1.0, strength_clip=1.0
    )
    assert not [e for e in run.events if isinstance(e, NodeWarning)]  # every extracted key found its layer
    assert torch.allclose(_unet_out(again), _unet_out(tuned), atol=2e-3)
    assert not torch.allclose(_unet_out(base), _unet_out(tuned), atol=2e-3)
    want = run("CLIPTextEncode", text="a cat", clip=tuned_clip)[0][0]
    assert torch.allclose(run("CLIPTextEncode", text="a cat", clip=again_clip)[0][0], want, atol=2e-3)
    assert all(torch.equal(v, before[k]) for k, v in base.unet.state_dict().items())  # the cached base untouched
    # LORA_MODEL: the same tensors held in memory apply as the file does
    in_memory = run("LoraModelLoader", model=base, lora=tensors, strength_model=1.0)[0]
    from_file = run("LoraLoaderModelOnly", model=base, lora_name="extracted.safetensors", strength_model=1.0)[0]
    assert torch.equal(_unet_out(in_memory), _unet_out(from_file))
    assert run("LoraModelLoader", model=base, lora=tensors, strength_model=0.0)[0] is base
    with pytest.raises(ValueError, match="lora: expected a LORA_MODEL"):
        run("LoraModelLoader", model=base, lora={"x": 1}, strength_model=1.0)
    # full differences (and bias differences) are exact up to float16 rounding
    run("LoraSave", filename_prefix="full", rank=1, lora_type="full_diff", bias_diff=True, model_diff=model_diff)
    full = load_file(menv.folders.output / "full_00001_.safetensors")
    assert full and all(k.endswith((".diff", ".diff_b")) for k in full)
    assert torch.allclose(
        _unet_out(run("LoraModelLoader", model=base, lora=full, strength_model=1.0)[0]), _unet_out(tuned), atol=2e-3
    )
    run.events.clear()
    run("LoraSave", filename_prefix="none", rank=1, lora_type="standard", bias_diff=True)
    assert any("no file was written" in e.message for e in run.events if isinstance(e, NodeWarning))


def test_flux_lora_through_both_nodes_patches_copies_and_names_unmapped_keys(
    registry: Any, env: Any, tmp_path: Any
) -> None:
    """A kohya FLUX LoRA (reference layer names, fused qkv) plus CLIP-L keys, on the demo FLUX files."""
    from diffusion.checkpoint import read_tensors
    from diffusion.demo_dit import DEMO_CLIP_L, DEMO_FLUX, DEMO_T5, DIT_DEMO_MODELS, write_dit_demo_model
    from diffusion.dit_loader import load_diffusion_model
    from diffusion.dit_text import load_text_encoders
    from diffusion.memory import ModelManager
    from diffusion.sampling import SampleRequest, sample

    files = {m.name: write_dit_demo_model(m, tmp_path) for m in DIT_DEMO_MODELS}
    manager = ModelManager.create(force_cpu=True)
    model = load_diffusion_model(files[DEMO_FLUX], manager)
    clip = load_text_encoders([files[DEMO_CLIP_L], files[DEMO_T5]], "flux", manager)
    gen = torch.Generator().manual_seed(3)
    sd: dict[str, torch.Tensor] = {}
    layers = [("lora_unet_" + k.removesuffix(".weight"), t) for k, t in read_tensors(files[DEMO_FLUX]).items()]
    layers += [("lora_te1_" + n, m.weight) for n, m in clip.units[0].module.named_modules() if isinstance(m, nn.Linear)]
    for stem, weight in layers:
        if weight.ndim == 2 and stem.endswith(("qkv", "linear1", "proj", "q_proj")):
            key = stem.replace(".", "_")
            sd[key + ".lora_down.weight"] = torch.randn(2, weight.shape[1], generator=gen) * 0.3
            sd[key + ".lora_up.weight"] = torch.randn(weight.shape[0], 2, generator=gen) * 0.3
    sd["lora_unet_double_blocks_7_img_attn_qkv.lora_down.weight"] = torch.zeros(2, 4)
    sd["lora_unet_double_blocks_7_img_attn_qkv.lora_up.weight"] = torch.zeros(4, 2)
    save_file(sd, env.folders.model_dirs("loras")[0] / "flux_style.safetensors")

    def run(m: Any, c: Any) -> torch.Tensor:
        enc = c.encode("a fox")
        cond = [[enc.cond, {"pooled_output": enc.pooled, "guidance": 3.5}]]
        latent = {"samples": torch.zeros(1, 16, 4, 4)}
        return sample(SampleRequest(m, 3, 2, 1.0, "euler", "simple", cond, cond, latent))["samples"]

    base = run(model, clip)
    events: list = []
    new_model, new_clip = _call(
        registry, env, "LoraLoader", events, model=model, clip=clip, lora_name="flux_style.safetensors",
        strength_model=1.0, strength_clip=1.0,
    )  # fmt: skip
    assert new_model.unet is not model.unet and new_clip.units[0].module is not clip.units[0].module
    assert new_clip.t5 is clip.t5
    assert not torch.equal(run(new_model, clip), base) and not torch.equal(run(model, new_clip), base)
    assert torch.equal(run(model, clip), base)  # the inputs are untouched
    warnings = [e for e in events if isinstance(e, NodeWarning)]
    assert len(warnings) == 1 and "lora_unet_double_blocks_7_img_attn_qkv.lora_down.weight" in warnings[0].message
    (only,) = _call(
        registry, env, "LoraLoaderModelOnly", [], model=model, lora_name="flux_style.safetensors", strength_model=0.0
    )
    assert only is model
