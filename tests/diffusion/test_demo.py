"""The demo files Loom writes on first start: their bundled tables match the builders, the real loaders read them,
and they are written only where they belong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from diffusion import demo

ROOT = Path(__file__).resolve().parents[2]


def write_all(folder: Path) -> dict[str, Path]:
    return {m.folder: demo.write_demo_model(m, folder / m.folder) for m in demo.DEMO_MODELS}


@pytest.mark.slow
def test_bundled_layouts_are_what_the_tiny_builders_make() -> None:
    from diffusion.tiny import (
        demo_clip_vision_layout,
        demo_controlnet_layout,
        demo_ip_adapter_layout,
        demo_layout,
        demo_upscaler_layout,
    )

    assert demo.checkpoint_layout() == demo_layout()
    assert demo.read_layout(demo.CONTROLNET_LAYOUT_FILE) == demo_controlnet_layout()
    assert demo.read_layout(demo.UPSCALER_LAYOUT_FILE) == demo_upscaler_layout()
    assert demo.read_layout(demo.CLIP_VISION_LAYOUT_FILE) == demo_clip_vision_layout()
    assert demo.read_layout(demo.IP_ADAPTER_LAYOUT_FILE) == demo_ip_adapter_layout()


@pytest.mark.slow
def test_the_real_loaders_read_every_demo_file(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from diffusion.checkpoint import read_tensors
    from diffusion.clip_vision import load_clip_vision
    from diffusion.controlnet import load_controlnet
    from diffusion.esrgan import load_rrdb
    from diffusion.ip_adapter import apply_ip_adapter, image_tokens, load_ip_adapter
    from diffusion.lora import match_lora
    from diffusion.memory import ModelManager
    from diffusion.tiny import build_tiny, tiny_spec

    paths = write_all(tmp_path)
    modules = build_tiny(tiny_spec("sd1", vae_levels=4))
    lora = read_tensors(paths["loras"])
    match = match_lora(lora, {"unet": modules.unet, "te1": modules.text[0]})
    assert match.unmapped == {}
    assert len(match.patches) == len(lora) // 3 and {p.target.component for p in match.patches} == {"unet", "te1"}

    net = load_controlnet(paths["controlnet"])
    x = torch.zeros(1, 4, 8, 8)
    down, mid = net(x, torch.tensor([10]), torch.zeros(1, 77, 32), torch.zeros(1, 3, 64, 64), return_dict=False)
    unet_down = modules.unet(x, 10, torch.zeros(1, 77, 32), return_dict=False)  # the residuals fit this UNet
    assert len(down) == 4 and mid.shape == (1, 64, 4, 4) and unet_down[0].shape == x.shape

    vision = load_clip_vision(paths["clip_vision"], ModelManager.create(force_cpu=True))
    adapter = load_ip_adapter(paths["ipadapter"])
    tokens = image_tokens(adapter, vision, [(torch.rand(1, 30, 30, 3), 1.0)])
    assert adapter.arch.variant == "base" and tokens.positive.shape == (1, 4, 32)
    assert apply_ip_adapter(modules.unet, adapter, tokens, 1.0) is not modules.unet

    upscaler = load_rrdb(load_file(str(paths["upscale_models"])))
    assert upscaler.scale == 4
    assert upscaler(torch.rand(1, 3, 5, 6)).shape == (1, 3, 20, 24)


def test_lora_layout_pairs_every_layer_with_down_up_and_alpha() -> None:
    layout = demo.lora_layout()
    stems = {k.rsplit(".", 2)[0] if k.endswith(".weight") else k.rsplit(".", 1)[0] for k in layout}
    for stem in stems:
        down, up = layout[f"{stem}.lora_down.weight"], layout[f"{stem}.lora_up.weight"]
        assert down[0] == up[1] == demo.LORA_RANK and layout[f"{stem}.alpha"] == []
    assert any(s.startswith("lora_unet_input_blocks_") for s in stems)
    assert any(s.startswith("lora_te_text_model_encoder_layers_") for s in stems)


def test_writing_is_deterministic_and_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from diffusion import demo\n"
        f"for m in demo.DEMO_MODELS: demo.write_demo_model(m, Path({str(tmp_path)!r}) / sys.argv[1])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    for run in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, run], cwd=ROOT, check=True)
    for model in demo.DEMO_MODELS:
        assert (tmp_path / "a" / model.name).read_bytes() == (tmp_path / "b" / model.name).read_bytes()


def folders_of(root: Path, listing: dict[str, list[str]]) -> dict[str, tuple[Path, list[str]]]:
    return {folder: (root / folder, listing.get(folder, [])) for folder in demo.DEMO_FILES}


def test_stand_ins_accompany_the_demo_checkpoint_into_empty_folders_only(tmp_path: Path) -> None:
    written = demo.ensure_demo_models(folders_of(tmp_path, {"loras": ["mine.safetensors"]}))
    stand_ins = [demo.DEMO_CONTROLNET, demo.DEMO_UPSCALER, demo.DEMO_CLIP_VISION, demo.DEMO_IP_ADAPTER]
    # the loras folder has a model: no demo LoRA beside it
    assert sorted(p.name for p in written) == sorted([demo.DEMO_NAME, *stand_ins])
    real = folders_of(tmp_path / "real", {"checkpoints": ["sd15.safetensors"]})
    assert demo.ensure_demo_models(real) == []  # real models: no demo files at all


def test_always_writes_every_missing_demo_file(tmp_path: Path) -> None:
    listing = {"checkpoints": ["sd15.safetensors"], "loras": [demo.DEMO_LORA]}
    written = demo.ensure_demo_models(folders_of(tmp_path, listing), always=True)
    stand_ins = [demo.DEMO_CONTROLNET, demo.DEMO_UPSCALER, demo.DEMO_CLIP_VISION, demo.DEMO_IP_ADAPTER]
    assert sorted(p.name for p in written) == sorted([demo.DEMO_NAME, *stand_ins])
    assert all(p.is_file() for p in written)
