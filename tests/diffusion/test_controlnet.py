import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from diffusion.controlnet import (
    ControlHint,
    ControlNetError,
    chain_residuals,
    detect_controlnet,
    load_controlnet,
    resize_cover,
)
from diffusion.ldm_names import ldm_state_dict_names
from tests.diffusion.tiny_lora_models import CONTEXT, tiny_controlnet, tiny_unet, unet_inputs


def _write_ldm(net: torch.nn.Module, path: Path, prefix: str = "control_model.") -> None:
    names = ldm_state_dict_names(net)
    save_file({prefix + names[k]: v.contiguous() for k, v in net.state_dict().items()}, path)


def _image(seed: int = 0, size: int = 32) -> torch.Tensor:
    return torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(seed))


def _call(net: torch.nn.Module, inputs: dict, image: torch.Tensor) -> tuple:
    hint = ControlHint(net, image)
    return hint.residuals(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"], 0.0)


@pytest.mark.parametrize("prefix", ["control_model.", ""])
def test_ldm_single_file_round_trip(tmp_path: Path, prefix: str) -> None:
    net = tiny_controlnet()
    _write_ldm(net, tmp_path / "cn.safetensors", prefix)
    loaded = load_controlnet(tmp_path / "cn.safetensors")
    assert loaded.config.block_out_channels == (8, 16)
    assert loaded.config.cross_attention_dim == CONTEXT
    inputs = unet_inputs()
    with torch.no_grad():
        want_down, want_mid = _call(net, inputs, _image())
        got_down, got_mid = _call(loaded, inputs, _image())
    assert len(got_down) == len(want_down) == 4
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got_down, want_down, strict=True))
    assert torch.allclose(got_mid, want_mid, atol=1e-5)


def test_diffusers_folder_loads(tmp_path: Path) -> None:
    net = tiny_controlnet()
    folder = tmp_path / "cn"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(dict(net.config)))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, folder / "diffusion_pytorch_model.safetensors")
    for path in (folder, folder / "diffusion_pytorch_model.safetensors"):
        loaded = load_controlnet(path)
        assert torch.equal(loaded.controlnet_mid_block.weight, net.controlnet_mid_block.weight)


def test_full_size_sd15_controlnet_shapes_detect_the_architecture() -> None:
    from diffusers import ControlNetModel

    with torch.device("meta"):
        ref = ControlNetModel(cross_attention_dim=768)
    names = ldm_state_dict_names(ref)
    arch = detect_controlnet({names[k]: tuple(v.shape) for k, v in ref.state_dict().items()})
    assert arch.unet.block_channels == (320, 640, 1280, 1280)
    assert arch.unet.attention == (True, True, True, False)
    assert arch.unet.layers_per_block == 2 and arch.family == "sd1"
    assert arch.hint_embedding_channels == (16, 32, 96, 256)
    config = arch.diffusers_config()
    assert config["attention_head_dim"] == (8, 8, 8, 8) and config["norm_num_groups"] == 32


def test_wrong_layout_is_a_clear_error(tmp_path: Path) -> None:
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3)}, tmp_path / "x.safetensors")
    with pytest.raises(ControlNetError, match=r"x\.safetensors: not an LDM-layout ControlNet.*\['model'\]"):
        load_controlnet(tmp_path / "x.safetensors")


def test_strength_range_and_chaining() -> None:
    net_a, net_b = tiny_controlnet(1), tiny_controlnet(2)
    unet = tiny_unet()
    inputs = unet_inputs()
    x, t, ctx = inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"]
    a = ControlHint(net_a, _image(1), strength=0.7)
    b = ControlHint(net_b, _image(2), strength=1.3, start_percent=0.2, end_percent=0.6).chained(a)
    assert b.previous is a and a.previous is None
    assert ControlHint(net_a, _image(1), strength=0.0).residuals(x, t, ctx, 0.3) is None
    assert b.residuals(x, t, ctx, 0.1) is None and b.residuals(x, t, ctx, 0.6) is None
    assert b.residuals(x, t, ctx, 0.2) is not None and a.residuals(x, t, ctx, 0.99) is not None
    with torch.no_grad():
        da, ma = a.residuals(x, t, ctx, 0.4)
        db, mb = b.residuals(x, t, ctx, 0.4)
        down, mid = chain_residuals(b, x, t, ctx, 0.4)
        assert all(torch.allclose(s, p + q) for s, p, q in zip(down, da, db, strict=True))
        assert torch.allclose(mid, ma + mb)
        only_a = chain_residuals(b, x, t, ctx, 0.8)
        assert torch.equal(only_a[1], ma)
        plain = unet(**inputs).sample
        controlled = unet(**inputs, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
    assert not torch.allclose(plain, controlled)
    assert chain_residuals(None, x, t, ctx, 0.0) is None


def test_hint_is_resized_to_latent_times_eight_per_batch_row() -> None:
    image = torch.rand(2, 20, 40, 3)
    hint = ControlHint(tiny_controlnet(), image)
    x = torch.zeros(3, 4, 8, 8)
    rows = hint.hint(x, [0, 1, 2])
    assert rows.shape == (3, 3, 64, 64)
    assert torch.equal(rows[0], rows[2])
    assert torch.equal(hint.hint(x, None), rows)
    square = resize_cover(torch.arange(16.0).reshape(1, 1, 4, 4), (4, 4))
    assert torch.equal(square, torch.arange(16.0).reshape(1, 1, 4, 4))


@pytest.mark.slow
def test_sdxl_controlnet_gets_the_pooled_embedding_and_size_numbers(tmp_path: Path, tiny_files, manager) -> None:
    """An SDXL ControlNet has SDXL's added embedding: the sampler must hand it text_embeds and time_ids too."""
    from diffusers import ControlNetModel

    from diffusion.loader import load_checkpoint
    from diffusion.sampling import SampleRequest, sample

    xl = load_checkpoint(tiny_files["sdxl"][0], manager)
    net = ControlNetModel.from_unet(xl.model.unet, conditioning_embedding_out_channels=(8, 8, 16, 16))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block")):
                param.copy_(torch.randn(param.shape, generator=gen) * 0.3)
    _write_ldm(net, tmp_path / "xl.safetensors")
    loaded = load_controlnet(tmp_path / "xl.safetensors")
    assert loaded.config.addition_embed_type == "text_time"
    calls: list[dict] = []
    forward = loaded.forward

    def spy(*args, **kwargs):
        calls.append(kwargs.get("added_cond_kwargs") or {})
        return forward(*args, **kwargs)

    loaded.forward = spy
    p, n = xl.clip.encode("a cat"), xl.clip.encode("")
    extras = {"pooled_output": p.pooled, "width": 1024, "height": 768}

    def run(control: ControlHint | None) -> torch.Tensor:
        pos = [[p.cond, extras | ({"control": control} if control else {})]]
        neg = [[n.cond, {"pooled_output": n.pooled}]]
        request = SampleRequest(xl.model, 1, 2, 5.0, "euler", "normal", pos, neg, {"samples": torch.zeros(1, 4, 8, 8)})
        return sample(request)["samples"]

    plain = run(None)
    controlled = run(ControlHint(loaded, _image(3)))
    assert calls and not torch.allclose(controlled, plain, atol=1e-4)
    assert torch.equal(calls[0]["text_embeds"], p.pooled.float())
    assert calls[0]["time_ids"].tolist() == [[768, 1024, 0, 0, 64, 64]]  # target: the latent's pixels
    assert torch.equal(run(ControlHint(loaded, _image(3), strength=0.0)), plain)


def test_hint_for_an_area_is_the_matching_part_of_the_whole_frames_hint() -> None:
    hint = ControlHint(tiny_controlnet(), torch.rand(1, 40, 40, 3))
    whole = hint.hint(torch.zeros(1, 4, 8, 8), None)
    part = hint.hint(torch.zeros(1, 4, 4, 2), None, crop=(8, 8, 2, 6, 5, 7))
    assert part.shape == (1, 3, 32, 16) and torch.equal(part, whole[..., 16:48, 40:56])
