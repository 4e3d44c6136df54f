"""FLUX and SD3 ControlNets on the demo transformers: detection per file layout, the residuals reaching the
transformer, strength 0 and start/end ranges, chains, CFG batches, union modes and wrong-family errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from diffusion.controlnet import ControlHint, ControlNetError, chain_residuals, load_controlnet
from diffusion.dit_controlnet import LatentControlHint, detect_dit_controlnet, is_dit_controlnet, load_dit_controlnet
from tests.diffusion.tiny_dit_controlnets import (
    flux_controlnet_state,
    sd3_controlnet_state,
    sd35_controlnet_state,
    write,
)

HINT = torch.rand(1, 48, 64, 3, generator=torch.Generator().manual_seed(5))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from diffusion.demo_dit import (
        DEMO_FLUX,
        DEMO_FLUX_VAE,
        DEMO_SD3,
        DEMO_SD3_VAE,
        DIT_DEMO_MODELS,
        write_dit_demo_model,
    )
    from diffusion.dit_loader import load_diffusion_model
    from diffusion.loader import load_vae_file
    from diffusion.memory import ModelManager

    folder = tmp_path_factory.mktemp("dit")
    files = {m.name: write_dit_demo_model(m, folder) for m in DIT_DEMO_MODELS}
    manager = ModelManager.create(force_cpu=True)
    return {
        "flux": load_diffusion_model(files[DEMO_FLUX], manager),
        "sd3": load_diffusion_model(files[DEMO_SD3], manager),
        "flux_vae": load_vae_file(files[DEMO_FLUX_VAE], manager),
        "sd3_vae": load_vae_file(files[DEMO_SD3_VAE], manager),
        "folder": folder,
        "manager": manager,
    }


def _cond(family: str, seed: int, control: Any = None) -> list:
    gen = torch.Generator().manual_seed(seed)
    width = 32 if family == "flux" else 64
    extras: dict[str, Any] = {"pooled_output": torch.randn(1, width, generator=gen)}
    if control is not None:
        extras["control"] = control
    return [[torch.randn(1, 6, width, generator=gen), extras]]


def _sample(model: Any, positive: list, negative: list | None = None, cfg: float = 1.0, steps: int = 2) -> torch.Tensor:
    from diffusion.sampling import SampleRequest, sample

    latent = {"samples": torch.zeros(1, model.latent_channels, 6, 8)}
    request = SampleRequest(model, 3, steps, cfg, "euler", "simple", positive, negative or positive, latent)
    return sample(request)["samples"]


def _hint(net: Any, vae: Any, strength: float = 1.0, start: float = 0.0, end: float = 1.0, image=HINT) -> Any:
    return LatentControlHint(net, image, strength, start, end, source="ControlNetApplyAdvanced", vae=vae)


def test_each_layout_is_detected_from_names_and_shapes() -> None:
    flux = detect_dit_controlnet(flux_controlnet_state(double=2, single=3))
    assert (flux.family, flux.layout, flux.union_modes) == ("flux", "diffusers", 0)
    assert (flux.config["num_layers"], flux.config["num_single_layers"], flux.config["guidance_embeds"]) == (2, 3, True)
    union = detect_dit_controlnet(flux_controlnet_state(single=0, modes=10))
    assert union.union_modes == 10 and union.config["num_single_layers"] == 0
    sd3 = detect_dit_controlnet(sd3_controlnet_state(layers=2))
    assert (sd3.family, sd3.layout, sd3.config["num_layers"], sd3.config["joint_attention_dim"]) == ("sd3", "diffusers",
                                                                                                    2, 64)  # fmt: skip
    sd35 = detect_dit_controlnet(sd35_controlnet_state(layers=3, control_type=1))
    assert (sd35.family, sd35.layout, sd35.control_type) == ("sd3", "reference", 1)
    assert sd35.config["num_layers"] == 3 and sd35.config["joint_attention_dim"] is None


def test_reference_sd35_file_converts_to_every_diffusers_tensor() -> None:
    state = sd35_controlnet_state(layers=2)
    assert "transformer_blocks.0.attn.qkv.weight" in state and "control_type" in state
    net = load_dit_controlnet(state, "sd3.5_large_controlnet_depth.safetensors")
    loaded = net.net.state_dict()
    k = state["transformer_blocks.1.attn.qkv.weight"].chunk(3)[1]
    assert torch.equal(loaded["transformer_blocks.1.attn.to_k.weight"], k)
    assert torch.equal(loaded["transformer_blocks.1.norm1.linear.bias"],
                       state["transformer_blocks.1.adaLN_modulation.1.bias"])  # fmt: skip


def test_other_files_are_not_dit_controlnets_and_odd_ones_are_refused() -> None:
    assert not is_dit_controlnet({"input_blocks.0.0.weight": (4, 4, 3, 3), "controlnet_blocks.0.weight": (1, 1)})
    with pytest.raises(ControlNetError, match="not a FLUX or SD3 ControlNet"):
        detect_dit_controlnet({"zero_convs.0.0.weight": (1,)})
    inpaint = flux_controlnet_state()
    inpaint["controlnet_x_embedder.weight"] = torch.zeros(64, 68)
    with pytest.raises(ControlNetError, match="17 latent channels"):
        detect_dit_controlnet(inpaint)
    broken = sd3_controlnet_state()
    del broken["transformer_blocks.0.attn.to_q.weight"]
    with pytest.raises(ControlNetError, match=r"cn\.safetensors: SD3 ControlNet: tensors do not fit"):
        load_dit_controlnet(broken, "cn.safetensors")


def test_loader_reads_dit_files_and_diffusers_folders(tmp_path: Path) -> None:
    import json

    net = load_controlnet(write(tmp_path / "flux_union.safetensors", flux_controlnet_state(modes=4)))
    assert net.family == "flux" and net.arch.union_modes == 4
    folder = tmp_path / "sd3-canny"
    write(folder / "diffusion_pytorch_model.safetensors", sd3_controlnet_state())
    (folder / "config.json").write_text(json.dumps({"_class_name": "SD3ControlNetModel"}))
    assert load_controlnet(folder).family == "sd3"


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_residuals_reach_the_transformer_and_strength_zero_is_bit_identical(demo: dict, family: str) -> None:
    state = flux_controlnet_state() if family == "flux" else sd3_controlnet_state()
    net, model, vae = load_dit_controlnet(state, "cn"), demo[family], demo[f"{family}_vae"]
    plain = _sample(model, _cond(family, 1))
    assert torch.equal(_sample(model, _cond(family, 1, _hint(net, vae, strength=0.0))), plain)
    controlled = _sample(model, _cond(family, 1, _hint(net, vae)))
    assert torch.isfinite(controlled).all() and not torch.allclose(controlled, plain)
    stronger = _sample(model, _cond(family, 1, _hint(net, vae, strength=2.0)))
    assert not torch.allclose(stronger, controlled)


def test_sd35_controlnet_uses_the_transformers_patch_embedding(demo: dict) -> None:
    net = load_dit_controlnet(sd35_controlnet_state(), "sd3.5_large_controlnet_depth.safetensors")
    assert net.net.pos_embed is None
    plain = _sample(demo["sd3"], _cond("sd3", 1))
    controlled = _sample(demo["sd3"], _cond("sd3", 1, _hint(net, demo["sd3_vae"])))
    assert torch.isfinite(controlled).all() and not torch.allclose(controlled, plain)


def _calls(net: Any) -> list[int]:
    calls: list[int] = []
    net.net.register_forward_hook(lambda _m, _i, _o: calls.append(1))
    return calls


def test_start_and_end_percent_limit_the_steps_it_acts_on(demo: dict) -> None:
    net, model, vae = load_dit_controlnet(flux_controlnet_state(), "cn"), demo["flux"], demo["flux_vae"]
    calls = _calls(net)
    _sample(model, _cond("flux", 1, _hint(net, vae)), steps=4)
    assert len(calls) == 4
    calls.clear()
    late = _sample(model, _cond("flux", 1, _hint(net, vae, start=0.5)), steps=4)
    late_calls = len(calls)
    calls.clear()
    early = _sample(model, _cond("flux", 1, _hint(net, vae, end=0.5)), steps=4)
    assert 0 < late_calls < 4 and 0 < len(calls) < 4 and late_calls + len(calls) == 4
    assert not torch.allclose(late, early)


def test_rows_with_guidance_off_give_the_controlnet_no_guidance_embedding(demo: dict) -> None:
    """FluxDisableGuidance rows: the ControlNet's residuals, like the transformer's output, no longer depend on the
    guidance value (the reference passes both none); rows with guidance on still do."""
    net, model, vae = load_dit_controlnet(flux_controlnet_state(), "cn"), demo["flux"], demo["flux_vae"]
    assert net.net.config.guidance_embeds
    hint = _hint(net, vae)
    gen = torch.Generator().manual_seed(4)
    x, context = torch.randn(2, 16, 6, 8, generator=gen), torch.randn(2, 6, 32, generator=gen)
    t = torch.full((2,), 0.6)

    def residuals(guidance: float, on: list[float]) -> list[torch.Tensor]:
        added = {
            "pooled": torch.randn(2, 32, generator=torch.Generator().manual_seed(9)),
            "guidance": torch.full((2,), guidance),
            "guidance_on": torch.tensor(on),
        }
        blocks, single = hint.residuals(x, t, context, 0.5, [0, 1], added_cond_kwargs=added, model=model)
        return [*blocks, *single]

    off_low, off_high = residuals(1.0, [0.0, 0.0]), residuals(5.0, [0.0, 0.0])
    assert all(torch.equal(a, b) for a, b in zip(off_low, off_high, strict=True))
    on_low, on_high = residuals(1.0, [1.0, 0.0]), residuals(5.0, [1.0, 0.0])
    assert not all(torch.allclose(a[0], b[0]) for a, b in zip(on_low, on_high, strict=True))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(on_low, on_high, strict=True))


def test_chained_controlnets_add_their_residuals(demo: dict) -> None:
    model, vae = demo["flux"], demo["flux_vae"]
    a = load_dit_controlnet(flux_controlnet_state(double=1, single=1, seed=1), "a")
    b = load_dit_controlnet(flux_controlnet_state(double=2, single=0, seed=2), "b")
    first, second = _hint(a, vae), _hint(b, vae, strength=0.7)
    chain = second.chained(first)
    x = torch.randn(1, 16, 6, 8)
    t = model.timestep(torch.tensor([0.6]))
    context, pooled = torch.randn(1, 6, 32), torch.randn(1, 32)
    added = model.conditioning_inputs([{"pooled_output": pooled}], 1)
    args = (x, t, context, 0.5, [0])
    blocks_a, single_a = chain_residuals(first, *args, added_cond_kwargs=added, model=model)
    blocks_b, single_b = chain_residuals(second, *args, added_cond_kwargs=added, model=model)
    blocks, single = chain_residuals(chain, *args, added_cond_kwargs=added, model=model)
    assert len(blocks) == len(model.unet.transformer_blocks) and single_b == []
    assert all(torch.allclose(s, p + q) for s, p, q in zip(blocks, blocks_a, blocks_b, strict=True))
    assert all(torch.equal(s, p) for s, p in zip(single, single_a, strict=True))
    both = _sample(model, _cond("flux", 1, chain))
    assert not torch.allclose(both, _sample(model, _cond("flux", 1, first)))


def test_cfg_batches_give_each_conditioning_its_own_control(demo: dict) -> None:
    model, vae = demo["sd3"], demo["sd3_vae"]
    net = load_dit_controlnet(sd3_controlnet_state(), "cn")
    plain = _sample(model, _cond("sd3", 1), _cond("sd3", 2), cfg=4.0)
    on_positive = _sample(model, _cond("sd3", 1, _hint(net, vae)), _cond("sd3", 2), cfg=4.0)
    on_both = _sample(model, _cond("sd3", 1, _hint(net, vae)), _cond("sd3", 2, _hint(net, vae)), cfg=4.0)
    assert not torch.allclose(on_positive, plain) and not torch.allclose(on_both, on_positive)


def test_union_controlnet_modes_differ_and_auto_runs_without_the_mode_embedding(demo: dict) -> None:
    from diffusion.controlnet import with_control_type

    model, vae = demo["flux"], demo["flux_vae"]
    union = load_dit_controlnet(flux_controlnet_state(modes=5), "union")
    auto = _sample(model, _cond("flux", 1, _hint(union, vae)))
    assert union.net.union and not torch.allclose(auto, _sample(model, _cond("flux", 1)))
    depth = _sample(model, _cond("flux", 1, _hint(with_control_type(union, "depth"), vae)))
    canny = _sample(model, _cond("flux", 1, _hint(with_control_type(union, "canny/lineart/anime_lineart/mlsd"), vae)))
    assert not torch.allclose(depth, canny) and not torch.allclose(depth, auto)
    with pytest.raises(ControlNetError, match="knows 5 control types"):
        _sample(model, _cond("flux", 1, _hint(with_control_type(union, "tile"), vae)))


def test_a_controlnet_of_another_family_is_a_clear_error(demo: dict, sd1) -> None:
    from tests.diffusion.tiny_lora_models import tiny_controlnet

    flux_net = load_dit_controlnet(flux_controlnet_state(), "cn")
    with pytest.raises(
        ControlNetError, match="ControlNetApplyAdvanced: this is a FLUX ControlNet; it cannot guide a sd3"
    ):
        _sample(demo["sd3"], _cond("sd3", 1, _hint(flux_net, demo["sd3_vae"])))
    unet_hint = ControlHint(tiny_controlnet(1), HINT, source="ControlNetApply")
    with pytest.raises(ControlNetError, match=r"ControlNetApply: this is a U-Net ControlNet .* flux transformer"):
        _sample(demo["flux"], _cond("flux", 1, unet_hint))
    unet_model = sd1.model
    context = torch.randn(1, 77, unet_model.unet.config.cross_attention_dim)
    sd1_cond = [[context, {"control": _hint(flux_net, demo["flux_vae"])}]]
    with pytest.raises(ControlNetError, match=r"FLUX ControlNet; it cannot guide a .* U-Net model"):
        _sample(unet_model, sd1_cond)
