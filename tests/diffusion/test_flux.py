"""FLUX: detection from names and shapes (full size on the meta device, and the stand-ins), the reference <->
diffusers conversion, the flow-matching shift, fp8 storage, the T5 tokenizer read from local files, and guidance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from diffusion.checkpoint import CheckpointError
from diffusion.detect import UnknownModel
from diffusion.flow import flow_schedule, flux_mu, sd3_shift
from diffusion.flux import FluxArch, detect_flux, flux_table, is_flux, to_diffusers, to_reference

FULL_DEV = FluxArch("", "reference", 16, 3072, 128, 1, 1, 4096, 768, True)


def meta_reference_state(arch: FluxArch, prefix: str = "") -> dict[str, torch.Tensor]:
    """A full-size FLUX file's tensors on the meta device (shapes only), made from diffusers' own module."""
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        module = FluxTransformer2DModel(**arch.config())
    return to_reference(module.state_dict(), arch, prefix)


def shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def test_full_size_dev_and_schnell_are_told_apart_by_the_guidance_embedding() -> None:
    dev = detect_flux(shapes(meta_reference_state(FULL_DEV, "model.diffusion_model.")))
    assert (dev.variant, dev.hidden, dev.heads, dev.head_dim) == ("dev", 3072, 24, 128)
    assert (dev.context_dim, dev.pooled_dim, dev.latent_channels) == (4096, 768, 16)
    assert dev.prefix == "model.diffusion_model."
    assert dev.config()["axes_dims_rope"] == (16, 56, 56)
    schnell = FluxArch("", "reference", 16, 3072, 128, 1, 1, 4096, 768, False)
    assert detect_flux(shapes(meta_reference_state(schnell))).variant == "schnell"


def test_conversion_matches_diffusers_own_single_file_converter_at_full_size() -> None:
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    state = meta_reference_state(FULL_DEV)
    theirs = convert_flux_transformer_checkpoint_to_diffusers(dict(state))
    ours = to_diffusers(state, detect_flux(shapes(state)))
    assert shapes(ours) == shapes(theirs)


def test_diffusers_layout_is_detected_with_the_same_sizes() -> None:
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        module = FluxTransformer2DModel(**FULL_DEV.config())
    found = detect_flux({f"transformer.{k}": tuple(v.shape) for k, v in module.state_dict().items()})
    assert found.layout == "diffusers" and found.prefix == "transformer."
    assert found.config() == FULL_DEV.config()


def test_other_files_are_not_flux() -> None:
    assert not is_flux({"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3)})
    with pytest.raises(UnknownModel, match="no FLUX transformer"):
        detect_flux({"x.weight": (1,)})
    broken = shapes(meta_reference_state(FULL_DEV))
    del broken["txt_in.weight"]
    with pytest.raises(UnknownModel, match=r"txt_in\.weight"):
        detect_flux(broken)


def test_reference_layout_round_trips_on_the_stand_in() -> None:
    from diffusion.tiny_dit import flux_file_state, tiny_flux_arch

    state = flux_file_state(tiny_flux_arch())
    arch = detect_flux(shapes(state))
    assert arch == tiny_flux_arch()
    back = to_reference(to_diffusers(state, arch), arch)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)
    assert len(flux_table(arch)) == len(state)


def test_flux_shift_follows_the_image_size() -> None:
    assert flux_mu(1024, 1024, 1.15, 0.5) == pytest.approx(1.15)
    assert flux_mu(256, 256, 1.15, 0.5) == pytest.approx(0.5)
    sched = flow_schedule("flux", 1.15)
    assert sched.sigma_max == pytest.approx(1.0) and 0 < sched.sigma_min < 0.01
    t = torch.tensor([0.5])
    assert float(sd3_shift(3.0, t)) == pytest.approx(0.75)
    assert float(flow_schedule("sd3", 3.0).sigmas[499]) == pytest.approx(0.75)


@pytest.fixture(scope="module")
def flux_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from diffusion.demo_dit import DIT_DEMO_MODELS, write_dit_demo_model

    folder = tmp_path_factory.mktemp("flux")
    return {m.name: write_dit_demo_model(m, folder) for m in DIT_DEMO_MODELS}


def _sample(model, clip, guidance, steps: int = 2) -> torch.Tensor:
    from diffusion.sampling import SampleRequest, sample

    enc = clip.encode("a fox")
    cond = [[enc.cond, {"pooled_output": enc.pooled, "guidance": guidance}]]
    latent = {"samples": torch.zeros(1, 16, 4, 6)}
    return sample(SampleRequest(model, 3, steps, 1.0, "euler", "simple", cond, cond, latent))["samples"]


@pytest.mark.slow
def test_guidance_is_honoured_by_dev_and_ignored_by_schnell(flux_files: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from diffusion.demo_dit import DEMO_CLIP_L, DEMO_FLUX, DEMO_T5
    from diffusion.dit_loader import load_diffusion_model
    from diffusion.dit_text import load_text_encoders
    from diffusion.memory import ModelManager
    from diffusion.tiny_dit import flux_file_state, tiny_flux_arch

    manager = ModelManager.create(force_cpu=True)
    clip = load_text_encoders([flux_files[DEMO_CLIP_L], flux_files[DEMO_T5]], "flux", manager)
    dev = load_diffusion_model(flux_files[DEMO_FLUX], manager)
    assert dev.guidance_embed and dev.shift == pytest.approx(1.15)
    a, b, off = _sample(dev, clip, 3.5), _sample(dev, clip, 1.0), _sample(dev, clip, None)
    assert a.shape == (1, 16, 4, 6) and torch.isfinite(a).all()
    assert not torch.allclose(a, b) and not torch.allclose(a, off)
    save_file(flux_file_state(tiny_flux_arch(guidance=False)), str(tmp_path / "schnell.safetensors"))
    schnell = load_diffusion_model(tmp_path / "schnell.safetensors", manager)
    assert not schnell.guidance_embed and schnell.shift == pytest.approx(1.0)
    assert torch.equal(_sample(schnell, clip, 3.5), _sample(schnell, clip, 1.0))


@pytest.mark.slow
def test_fp8_storage_upcasts_per_layer(flux_files: dict[str, Path]) -> None:
    from diffusion.demo_dit import DEMO_CLIP_L, DEMO_FLUX, DEMO_T5
    from diffusion.dit_loader import load_diffusion_model
    from diffusion.dit_text import load_text_encoders
    from diffusion.memory import ModelManager
    from diffusion.precision import CastLinear

    manager = ModelManager.create(force_cpu=True)
    clip = load_text_encoders([flux_files[DEMO_CLIP_L], flux_files[DEMO_T5]], "flux", manager)
    full = load_diffusion_model(flux_files[DEMO_FLUX], manager)
    fp8 = load_diffusion_model(flux_files[DEMO_FLUX], manager, "fp8_e4m3fn")
    linears = [m for m in fp8.unet.modules() if isinstance(m, CastLinear)]
    assert linears and all(m.weight.dtype == torch.float8_e4m3fn for m in linears)
    a, b = _sample(full, clip, 3.5), _sample(fp8, clip, 3.5)
    assert torch.isfinite(b).all() and (a - b).abs().mean() < 0.2 * a.abs().mean()
    with pytest.raises(CheckpointError, match="weight_dtype"):
        load_diffusion_model(flux_files[DEMO_FLUX], manager, "int3")


def test_t5_tokenizer_from_a_sentencepiece_model_trained_here(tmp_path: Path) -> None:
    import sentencepiece

    from diffusion.t5 import EOS, T5Tokenizer, find_tokenizer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["a red fox in the snow", "the quick brown fox jumps", "snow falls on the hills"] * 20))
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tmp_path / "spiece"), vocab_size=28, hard_vocab_limit=False,
        model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
    )  # fmt: skip
    encoder = tmp_path / "t5xxl_fp16.safetensors"
    assert find_tokenizer(encoder) == tmp_path / "spiece.model"
    tok = T5Tokenizer(find_tokenizer(encoder))
    ids = tok("a red fox")
    assert ids[-1] == EOS and len(ids) > 2 and max(ids) < tok.size
    assert tok("a red fox") != tok("the snow")


def test_a_missing_t5_tokenizer_names_where_to_put_it(tmp_path: Path) -> None:
    from diffusion.t5 import find_tokenizer

    with pytest.raises(CheckpointError, match=r"spiece\.model.*beside it in"):
        find_tokenizer(tmp_path / "t5xxl_fp16.safetensors")


def test_demo_tokenizer_json_reads_like_a_t5_tokenizer(tmp_path: Path) -> None:
    from diffusion.demo_dit import write_t5_tokenizer
    from diffusion.t5 import EOS, T5Tokenizer, find_tokenizer
    from diffusion.tiny_dit import T5_VOCAB

    encoder = tmp_path / "loom-demo-tiny-t5.safetensors"
    write_t5_tokenizer(encoder)
    tok = T5Tokenizer(find_tokenizer(encoder))
    ids = tok("A fox, 3 cats!")
    assert ids[-1] == EOS and 2 not in ids and tok.size <= T5_VOCAB


@pytest.mark.slow
def test_bundled_flux_demo_layouts_are_what_the_builders_make() -> None:
    from diffusion.demo_dit import _layouts
    from diffusion.tiny_dit import dit_demo_layouts

    assert _layouts() == dit_demo_layouts()
