"""SD3 / SD3.5: variants told apart from names and shapes (full size on the meta device, both layouts), diffusers'
single-file conversion against the stand-in writer, loading standalone and full checkpoints, the SD3 conditioning,
sampling with CFG, and skip-layer guidance."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from diffusion.checkpoint import CheckpointError
from diffusion.detect import UnknownModel
from diffusion.sd3 import SD3Arch, detect_sd3, is_sd3, sd3_table, to_diffusers, to_reference
from diffusion.tiny_dit import sd3_file_state, tiny_sd3_arch

PREFIX = "model.diffusion_model."
MEDIUM = SD3Arch(PREFIX, "reference", 16, 16, 2, 1536, 64, 24, 4096, 2048, 192, (), False)
LARGE = SD3Arch(PREFIX, "reference", 16, 16, 2, 2432, 64, 38, 4096, 2048, 192, (), True)
MEDIUM_35 = SD3Arch(PREFIX, "reference", 16, 16, 2, 1536, 64, 24, 4096, 2048, 384, tuple(range(13)), True)


def shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def meta_module(arch: SD3Arch) -> torch.nn.Module:
    from diffusers import SD3Transformer2DModel

    with torch.device("meta"):
        return SD3Transformer2DModel(**arch.config())


@pytest.mark.parametrize(
    ("arch", "variant"), [(MEDIUM, "sd3-medium"), (LARGE, "sd3.5-large"), (MEDIUM_35, "sd3.5-medium")]
)
def test_full_size_variants_are_told_apart_in_both_layouts(arch: SD3Arch, variant: str) -> None:
    module = meta_module(arch)
    reference = to_reference(module.state_dict(), arch, PREFIX)
    found = detect_sd3(shapes(reference))
    assert found == arch and found.variant == variant
    assert (found.heads, found.head_dim) == (arch.depth, 64)
    diffusers_names = {f"transformer.{k}": tuple(v.shape) for k, v in module.state_dict().items()}
    other = detect_sd3(diffusers_names)
    assert other.layout == "diffusers" and other.prefix == "transformer." and other.config() == arch.config()
    assert shapes(to_diffusers(reference, found)) == shapes(module.state_dict())


def test_other_files_are_not_sd3() -> None:
    from diffusion.flux import is_flux

    assert not is_sd3({"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3)})
    assert not is_sd3({"transformer_blocks.0.attn.add_q_proj.weight": (8, 8), "x_embedder.weight": (8, 64)})
    with pytest.raises(UnknownModel, match="no SD3 transformer"):
        detect_sd3({"x.weight": (1,)})
    broken = shapes(sd3_file_state(tiny_sd3_arch()))
    assert is_sd3(broken) and not is_flux(broken)
    del broken["y_embedder.mlp.0.weight"]
    with pytest.raises(UnknownModel, match=r"y_embedder\.mlp\.0\.weight"):
        detect_sd3(broken)


@pytest.mark.parametrize("arch", [tiny_sd3_arch(), tiny_sd3_arch(3, 96, (0, 1), True, PREFIX)])
def test_reference_layout_round_trips_through_diffusers_converter(arch: SD3Arch) -> None:
    state = sd3_file_state(arch, seed=3)
    found = detect_sd3(shapes(state))
    assert found == arch
    converted = to_diffusers(state, found)
    back = to_reference(converted, found, arch.prefix)
    assert back.keys() == state.keys() and len(sd3_table(arch)) == len(state)
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_a_missing_block_tensor_names_itself() -> None:
    state = sd3_file_state(tiny_sd3_arch(prefix=PREFIX))
    del state[f"{PREFIX}joint_blocks.1.x_block.mlp.fc2.bias"]
    with pytest.raises(UnknownModel, match=r"joint_blocks\.1\.x_block\.mlp\.fc2\.bias"):
        to_diffusers(state, detect_sd3(shapes(state)))


@pytest.fixture(scope="module")
def sd3_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from diffusion.demo_dit import DIT_DEMO_MODELS, write_dit_demo_model

    folder = tmp_path_factory.mktemp("sd3")
    return {m.name: write_dit_demo_model(m, folder) for m in DIT_DEMO_MODELS}


def _encode(clip, text: str) -> list:
    enc = clip.encode(text)
    return [[enc.cond, {"pooled_output": enc.pooled}]]


def _sample(model, clip, cfg: float = 4.0, steps: int = 2) -> torch.Tensor:
    from diffusion.sampling import SampleRequest, sample

    latent = {"samples": torch.zeros(1, 16, 5, 6)}
    request = SampleRequest(model, 3, steps, cfg, "euler", "simple", _encode(clip, "a fox"), _encode(clip, ""), latent)
    return sample(request)["samples"]


@pytest.mark.slow
def test_standalone_files_load_encode_and_sample(sd3_files: dict[str, Path]) -> None:
    from diffusion.demo_dit import DEMO_CLIP_G, DEMO_CLIP_L, DEMO_SD3, DEMO_SD3_VAE, DEMO_T5
    from diffusion.dit_loader import load_diffusion_model
    from diffusion.dit_text import load_text_encoders
    from diffusion.loader import load_vae_file
    from diffusion.memory import ModelManager

    manager = ModelManager.create(force_cpu=True)
    model = load_diffusion_model(sd3_files[DEMO_SD3], manager)
    assert (model.family, model.shift_kind, model.shift, model.latent_channels) == ("sd3", "sd3", 3.0, 16)
    clip = load_text_encoders([sd3_files[n] for n in (DEMO_T5, DEMO_CLIP_G, DEMO_CLIP_L)], "sd3", manager)
    enc = clip.encode("a fox")
    # CLIP-L | CLIP-G side by side, padded to T5-XXL's 4096, then T5's 77 tokens; pooled: L (unprojected) | G
    assert enc.cond.shape == (1, 77 + 77, 4096) and enc.pooled.shape == (1, 64)
    assert not enc.cond[:, :77, 64:].any() and enc.cond[:, 77:, :32].any()
    guided, plain = _sample(model, clip), _sample(model, clip, cfg=1.0)
    assert guided.shape == (1, 16, 5, 6) and torch.isfinite(guided).all() and not torch.allclose(guided, plain)
    vae = load_vae_file(sd3_files[DEMO_SD3_VAE], manager)
    assert (vae.scaling_factor, vae.shift_factor) == (1.5305, 0.0609)
    fp8 = load_diffusion_model(sd3_files[DEMO_SD3], manager, "fp8_e4m3fn")
    approx = _sample(fp8, clip)
    assert torch.isfinite(approx).all() and (approx - guided).abs().mean() < 0.2 * guided.abs().mean()


@pytest.mark.slow
def test_a_full_checkpoint_bundles_its_encoders_and_vae(sd3_files: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from diffusion.demo_dit import DEMO_CLIP_L, DEMO_SD3, DEMO_SD3_VAE, DEMO_T5
    from diffusion.loader import load_checkpoint
    from diffusion.memory import ModelManager
    from diffusion.tiny_dit import clip_file_state

    bundled = dict(load_file(sd3_files[DEMO_SD3]))
    bundled |= {f"first_stage_model.{k}": v for k, v in load_file(sd3_files[DEMO_SD3_VAE]).items()}
    bundled |= {f"text_encoders.clip_l.transformer.{k}": v for k, v in load_file(sd3_files[DEMO_CLIP_L]).items()}
    # full checkpoints hold CLIP-G under transformers' names, as its own prefix says
    bundled |= {f"text_encoders.clip_g.transformer.{k}": v for k, v in clip_file_state("clip_l", seed=9).items()}
    bundled |= {f"text_encoders.t5xxl.transformer.{k}": v for k, v in load_file(sd3_files[DEMO_T5]).items()}
    path = tmp_path / "sd3_medium_incl_clips_t5xxlfp8.safetensors"
    save_file(bundled, str(path))
    manager = ModelManager.create(force_cpu=True)
    with pytest.raises(CheckpointError, match="T5 tokenizer is missing"):
        load_checkpoint(path, manager)
    shutil.copy(sd3_files[DEMO_T5].with_suffix(".tokenizer.json"), tmp_path / "tokenizer.json")
    ckpt = load_checkpoint(path, manager)
    assert ckpt.info.family == "sd3" and ckpt.model.family == "sd3"
    assert sorted(ckpt.clip.clips) == ["clip_g", "clip_l"] and ckpt.clip.t5 is not None
    assert ckpt.vae.scaling_factor == 1.5305 and ckpt.info.vae.latent_channels == 16
    assert torch.isfinite(_sample(ckpt.model, ckpt.clip)).all()
    alone = tmp_path / "sd3.5_large_no_encoders.safetensors"
    save_file({k: v for k, v in bundled.items() if not k.startswith("text_encoders.")}, str(alone))
    bare = load_checkpoint(alone, manager)
    assert bare.clip is None and bare.model is not None and bare.vae is not None


@pytest.mark.slow
def test_skip_layer_guidance_at_scale_0_is_bit_identical(sd3_files: dict[str, Path]) -> None:
    from diffusion.demo_dit import DEMO_CLIP_G, DEMO_CLIP_L, DEMO_SD3, DEMO_T5
    from diffusion.dit_loader import load_diffusion_model
    from diffusion.dit_text import load_text_encoders
    from diffusion.memory import ModelManager
    from diffusion.post_guidance import SkipLayerGuidance
    from diffusion.unet_patches import SkipBlocks

    manager = ModelManager.create(force_cpu=True)
    model = load_diffusion_model(sd3_files[DEMO_SD3], manager)
    clip = load_text_encoders([sd3_files[n] for n in (DEMO_CLIP_L, DEMO_CLIP_G, DEMO_T5)], "sd3", manager)
    plain = _sample(model, clip)
    skip = SkipBlocks((0,))
    off = model.with_post_guidance(SkipLayerGuidance(skip, 0.0, 1e9, 0.0))
    assert torch.equal(_sample(off, clip), plain)
    on = model.with_post_guidance(SkipLayerGuidance(skip, 3.0, 1e9, 0.0))
    assert not torch.allclose(_sample(on, clip), plain)
    outside = model.with_post_guidance(SkipLayerGuidance(skip, 3.0, 0.5, 0.4))  # no step's sigma in range
    assert torch.equal(_sample(outside, clip), plain)
    assert not any(block._forward_hooks for block in model.unet.transformer_blocks)


def test_demo_files_join_folders_holding_only_demo_files(tmp_path: Path) -> None:
    """A machine whose first start predates the SD3 demo (FLUX demo files only) gets it; real models keep a folder
    free of demo files."""
    from diffusion.demo_dit import DEMO_FLUX, DEMO_SD3, DIT_DEMO_MODELS, ensure_dit_demo_models

    demo, real = tmp_path / "demo", tmp_path / "real"
    written = ensure_dit_demo_models({"diffusion_models": (demo, [DEMO_FLUX])}, demo_present=True)
    assert [p.name for p in written] == [m.name for m in DIT_DEMO_MODELS if m.folder == "diffusion_models"][1:]
    assert (demo / DEMO_SD3).is_file()
    assert ensure_dit_demo_models({"diffusion_models": (real, ["sd3.5_large.safetensors"])}, True) == []
    assert ensure_dit_demo_models({"diffusion_models": (real, [])}, demo_present=False) == []
    forced = ensure_dit_demo_models({"diffusion_models": (real, ["sd3.5_large.safetensors"])}, False, always=True)
    assert {p.name for p in forced} == {DEMO_FLUX, DEMO_SD3}


def test_skipped_blocks_match_diffusers_own_skip_layers() -> None:
    """SkipBlocks (forward hooks, so FLUX's blocks can be skipped too) does what SD3Transformer2DModel's own
    `skip_layers` does; out-of-range indices attach nothing; the hooks leave with their handles."""
    from diffusion.checkpoint import assign_weights
    from diffusion.dit_loader import build_sd3
    from diffusion.tiny import random_weights
    from diffusion.unet_patches import SkipBlocks

    arch = tiny_sd3_arch(3, 96)
    module = build_sd3(arch)
    module = assign_weights(module, random_weights(module, 5), "tiny", torch.float32)
    inputs = {
        "hidden_states": torch.randn(1, 16, 4, 6),
        "encoder_hidden_states": torch.randn(1, 7, arch.context_dim),
        "pooled_projections": torch.randn(1, arch.pooled_dim),
        "timestep": torch.tensor([500.0]),
    }
    with torch.no_grad():
        full = module(**inputs).sample
        native = module(**inputs, skip_layers=[0, 2]).sample
        handles = SkipBlocks((0, 2, 7)).attach(module)
        assert len(handles) == 2
        hooked = module(**inputs).sample
        for handle in handles:
            handle.remove()
        again = module(**inputs).sample
    assert torch.allclose(hooked, native, atol=1e-6) and not torch.allclose(hooked, full)
    assert torch.equal(again, full)


@pytest.mark.parametrize("layout", ["kohya", "peft"])
def test_lora_in_reference_and_diffusers_names(layout: str) -> None:
    """A kohya LoRA on the fused reference layers (qkv, the last block's swapped modulation) patches what the same
    deltas added to the reference weights give after diffusers' conversion; PEFT's split layers alike."""
    from diffusion.checkpoint import assign_weights
    from diffusion.dit_loader import build_sd3
    from diffusion.lora import apply_patches, match_lora
    from diffusion.lora_keys import UNET
    from tests.diffusion.test_flux_lora import _deltas, _kohya

    arch = tiny_sd3_arch(3, 96, (0,), True)
    state = sd3_file_state(arch, seed=4)
    deltas = _deltas(state)
    patched_state = dict(state)
    for layer, (down, up) in deltas.items():
        patched_state[f"{layer}.weight"] = state[f"{layer}.weight"] + 0.8 * up @ down

    def module(weights: dict[str, torch.Tensor]) -> torch.nn.Module:
        return assign_weights(build_sd3(arch), to_diffusers(weights, arch), "sd3", torch.float32)

    base = module(state)
    if layout == "kohya":
        lora = _kohya(deltas)
    else:  # the expected diffusers weights' differences, as rank-full PEFT pairs on the split layers
        target = to_diffusers(patched_state, arch)
        lora = {}
        for name, tensor in to_diffusers(state, arch).items():
            if name.endswith(".weight") and tensor.ndim == 2 and not torch.equal(tensor, target[name]):
                stem = f"transformer.{name.removesuffix('.weight')}"
                lora[f"{stem}.lora_A.weight"] = torch.eye(tensor.shape[1])
                lora[f"{stem}.lora_B.weight"] = (target[name] - tensor) / 0.8
    match = match_lora(lora, {UNET: base})
    assert match.unmapped == {} and match.patches
    patched = apply_patches({UNET: base}, match.patches, {UNET: 0.8})[UNET]
    inputs = {
        "hidden_states": torch.randn(1, 16, 4, 4, generator=torch.Generator().manual_seed(2)),
        "encoder_hidden_states": torch.randn(1, 5, arch.context_dim, generator=torch.Generator().manual_seed(3)),
        "pooled_projections": torch.randn(1, arch.pooled_dim, generator=torch.Generator().manual_seed(4)),
        "timestep": torch.tensor([600.0]),
    }
    with torch.no_grad():
        got, want = patched(**inputs).sample, module(patched_state)(**inputs).sample
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
