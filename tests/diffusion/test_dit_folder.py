"""FLUX and SD3 diffusers pipeline folders: family and variant from the folder's JSON, the same outputs as the
equivalent single files (sharded transformer, both T5 tokenizer forms, CLIP-G renamed), the scheduler's shift,
SD3 without T5, 16-bit weights kept as stored, and errors naming a missing part."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from diffusion.checkpoint import CheckpointError
from diffusion.dit_folder import inspect_folder
from diffusion.dit_loader import load_diffusion_model
from diffusion.dit_text import load_text_encoders
from diffusion.flow import flow_schedule
from diffusion.loader import load_diffusers_folder, load_vae_file
from diffusion.memory import ModelManager
from diffusion.precision import CastLinear
from tests.diffusion.tiny_dit_folders import TinyPipeline, write_flux_pipeline, write_sd3_pipeline


@pytest.fixture(scope="module")
def spiece(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A T5-style SentencePiece model trained here (pad 0, </s> 1, unk 2), small enough for the tiny T5."""
    import sentencepiece

    root = tmp_path_factory.mktemp("spiece")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(["a red fox in the snow", "the quick brown fox jumps", "snow falls on hills"] * 20))
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(root / "spiece"), vocab_size=28, hard_vocab_limit=False,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
    )  # fmt: skip
    return root / "spiece.model"


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory: pytest.TempPathFactory, spiece: Path) -> dict[str, TinyPipeline]:
    root = tmp_path_factory.mktemp("pipelines")
    return {
        "dev": write_flux_pipeline(root / "dev", guidance=True, shards=3),
        "schnell": write_flux_pipeline(root / "schnell", guidance=False, shards=1, seed=5),
        "sd3": write_sd3_pipeline(root / "sd3", spiece=spiece),
        "sd3-no-t5": write_sd3_pipeline(root / "sd3-no-t5", t5=False),
    }


def _manager() -> ModelManager:
    return ModelManager(device=torch.device("cpu"), dtype=torch.float32)


def _copy(pipeline: TinyPipeline, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pipeline.folder, tmp_path / pipeline.folder.name))


@pytest.mark.parametrize(
    ("name", "family", "variant", "kind", "shift"),
    [
        ("dev", "flux", "dev", "flux", 1.15),
        ("schnell", "flux", "schnell", "sd3", 1.0),
        ("sd3", "sd3", "sd3-medium", "sd3", 3.0),
        ("sd3-no-t5", "sd3", "sd3-medium", "sd3", 3.0),
    ],
)
def test_family_variant_and_shift_come_from_the_folder(
    pipelines: dict[str, TinyPipeline], name: str, family: str, variant: str, kind: str, shift: float
) -> None:
    info = inspect_folder(pipelines[name].folder)
    assert (info.family, info.variant, info.shift_kind, info.shift) == (family, variant, kind, pytest.approx(shift))


def _flux_inputs(guidance: bool = True) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    inputs = {
        "hidden_states": torch.randn(1, 4, 64, generator=gen),
        "encoder_hidden_states": torch.randn(1, 3, 32, generator=gen),
        "pooled_projections": torch.randn(1, 32, generator=gen),
        "timestep": torch.tensor([0.7]),
        "img_ids": torch.zeros(4, 3),
        "txt_ids": torch.zeros(3, 3),
    }
    return inputs | ({"guidance": torch.tensor([3.5])} if guidance else {})


def _sd3_inputs() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return {
        "hidden_states": torch.randn(1, 16, 4, 4, generator=gen),
        "encoder_hidden_states": torch.randn(1, 5, 64, generator=gen),
        "pooled_projections": torch.randn(1, 64, generator=gen),
        "timestep": torch.tensor([500.0]),
    }


def _assert_same_parts(ckpt, model, clip, vae, inputs: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        assert torch.equal(ckpt.model.unet(**inputs).sample, model.unet(**inputs).sample)
        z = torch.randn(1, 16, 4, 4, generator=torch.Generator().manual_seed(4))
        assert torch.equal(ckpt.vae.module.decode(z).sample, vae.module.decode(z).sample)
    assert (ckpt.vae.scaling_factor, ckpt.vae.shift_factor) == (vae.scaling_factor, vae.shift_factor)
    for text in ("a red fox in the snow", ""):  # OpenCLIP files store CLIP-G's projection transposed: float order
        a, b = ckpt.clip.encode(text), clip.encode(text)
        torch.testing.assert_close(a.cond, b.cond, rtol=0, atol=1e-6)
        torch.testing.assert_close(a.pooled, b.pooled, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["dev", "schnell"])
def test_a_flux_folder_computes_what_its_single_files_compute(pipelines: dict[str, TinyPipeline], name: str) -> None:
    pipe, manager = pipelines[name], _manager()
    ckpt = load_diffusers_folder(pipe.folder, manager)
    model = load_diffusion_model(pipe.files["model"], manager)
    clip = load_text_encoders([pipe.files["clip_l"], pipe.files["t5xxl"]], "flux", manager)
    assert ckpt.info.family == "flux" and ckpt.model.guidance_embed == (name == "dev")
    assert ckpt.model.latent_channels == 16
    _assert_same_parts(ckpt, model, clip, load_vae_file(pipe.files["vae"], manager), _flux_inputs(name == "dev"))
    assert ckpt.clip.t5.tokenizer.path.parent.name == "tokenizer_2"


def test_an_sd3_folder_computes_what_its_single_files_compute(pipelines: dict[str, TinyPipeline]) -> None:
    pipe, manager = pipelines["sd3"], _manager()
    ckpt = load_diffusers_folder(pipe.folder, manager)
    model = load_diffusion_model(pipe.files["model"], manager)
    files = [pipe.files["clip_l"], pipe.files["clip_g"], pipe.files["t5xxl"]]
    clip = load_text_encoders(files, "sd3", manager)
    assert ckpt.info.family == "sd3" and ckpt.model.shift_kind == "sd3"
    assert ckpt.clip.t5.tokenizer.path == pipe.folder / "tokenizer_3" / "spiece.model"
    assert sorted(ckpt.clip.clips) == ["clip_g", "clip_l"]
    assert ckpt.clip.clips["clip_l"].units[0].arch.projection_dim is None  # the projection in the folder is unused
    _assert_same_parts(ckpt, model, clip, load_vae_file(pipe.files["vae"], manager), _sd3_inputs())


def test_sd3_without_t5_encodes_like_its_clips_alone(pipelines: dict[str, TinyPipeline]) -> None:
    pipe, manager = pipelines["sd3-no-t5"], _manager()
    ckpt = load_diffusers_folder(pipe.folder, manager)
    assert ckpt.clip.t5 is None
    clip = load_text_encoders([pipe.files["clip_l"], pipe.files["clip_g"]], "sd3", manager)
    a, b = ckpt.clip.encode("a fox"), clip.encode("a fox")
    assert a.cond.shape == (1, 77, 4096) and not a.cond[..., 64:].any()  # CLIP states, zeros where T5's width is
    torch.testing.assert_close(a.cond, b.cond, rtol=0, atol=1e-6)
    torch.testing.assert_close(a.pooled, b.pooled, rtol=0, atol=1e-6)


def _scheduler(folder: Path, config: dict | None) -> None:
    path = folder / "scheduler" / "scheduler_config.json"
    if config is None:
        shutil.rmtree(path.parent)
    else:
        path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("name", "config", "kind", "shift"),
    [
        ("sd3", {"shift": 2.5}, "sd3", 2.5),
        ("sd3", None, "sd3", 3.0),
        ("dev", {"use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.4}, "flux", 1.4),
        ("dev", None, "flux", 1.15),
        ("schnell", None, "flux", 1.0),
        ("schnell", {"shift": 1.7, "use_dynamic_shifting": False}, "sd3", 1.7),
    ],
)
def test_the_scheduler_config_sets_the_sampling_shift(
    pipelines: dict[str, TinyPipeline], tmp_path: Path, name: str, config: dict | None, kind: str, shift: float
) -> None:
    folder = _copy(pipelines[name], tmp_path)
    _scheduler(folder, config)
    model = load_diffusers_folder(folder, _manager()).model
    assert (model.shift_kind, model.shift) == (kind, pytest.approx(shift))
    assert torch.equal(model.schedule.sigmas, flow_schedule(kind, shift).sigmas)


def test_an_unsupported_scheduler_shift_is_refused(pipelines: dict[str, TinyPipeline], tmp_path: Path) -> None:
    folder = _copy(pipelines["dev"], tmp_path)
    _scheduler(folder, {"use_dynamic_shifting": True, "time_shift_type": "linear"})
    with pytest.raises(CheckpointError, match="time_shift_type 'linear'"):
        inspect_folder(folder)
    _scheduler(folder, {"shift": -1})
    with pytest.raises(CheckpointError, match="shift -1"):
        inspect_folder(folder)


@pytest.mark.parametrize(
    ("name", "remove", "message"),
    [
        ("dev", "text_encoder_2", r"missing text_encoder_2/ \(the t5xxl text encoder\)"),
        ("dev", "tokenizer", r"missing tokenizer/ \(the clip_l tokenizer\)"),
        ("dev", "vae", r"missing vae/"),
        ("dev", "transformer", r"missing transformer/"),
        ("dev", "transformer/config.json", r"missing transformer/ \(config\.json\)"),
        ("dev", "transformer/diffusion_pytorch_model-00002-of-00003.safetensors", r"missing files: .*00002-of-00003"),
        ("schnell", "transformer/diffusion_pytorch_model.safetensors", r"transformer/: no weights"),
        ("sd3", "text_encoder_2", r"missing text_encoder_2/ \(the clip_g text encoder\)"),
        ("sd3", "tokenizer_3", r"missing tokenizer_3/ \(the t5xxl tokenizer\)"),
        ("sd3", "tokenizer_3/spiece.model", r"missing tokenizer_3/ \(the T5 tokenizer"),
        ("sd3", "tokenizer_2/merges.txt", r"tokenizer_2/: the CLIP tokenizer is missing"),
    ],
)
def test_a_missing_part_is_named(
    pipelines: dict[str, TinyPipeline], tmp_path: Path, name: str, remove: str, message: str
) -> None:
    folder = _copy(pipelines[name], tmp_path)
    target = folder / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(CheckpointError, match=message):
        load_diffusers_folder(folder, _manager())


def test_other_ways_the_weights_are_stored(pipelines: dict[str, TinyPipeline], tmp_path: Path) -> None:
    """A precision variant's file name (`*.fp16.safetensors`), and CLIP-L as transformers 5 saves a CLIPTextModel
    (no `text_model.` level), load like the hub's plain names."""
    from safetensors.torch import load_file, save_file

    pipe = pipelines["schnell"]
    expected = load_diffusers_folder(pipe.folder, _manager())
    folder = _copy(pipe, tmp_path)
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_name("diffusion_pytorch_model.fp16.safetensors"))
    clip_file = folder / "text_encoder" / "model.safetensors"
    save_file({k.removeprefix("text_model."): v for k, v in load_file(clip_file).items()}, str(clip_file))
    ckpt = load_diffusers_folder(folder, _manager())
    with torch.no_grad():
        inputs = _flux_inputs(guidance=False)
        assert torch.equal(ckpt.model.unet(**inputs).sample, expected.model.unet(**inputs).sample)
    assert torch.equal(ckpt.clip.encode("a fox").pooled, expected.clip.encode("a fox").pooled)


def test_a_vae_config_without_a_latent_scale_gets_the_family_s(
    pipelines: dict[str, TinyPipeline], tmp_path: Path
) -> None:
    folder = _copy(pipelines["sd3"], tmp_path)
    config_file = folder / "vae" / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({k: v for k, v in config.items() if k not in ("scaling_factor", "shift_factor")}))
    vae = load_diffusers_folder(folder, _manager()).vae
    assert (vae.scaling_factor, vae.shift_factor) == (pytest.approx(1.5305), pytest.approx(0.0609))


def test_a_folder_of_another_family_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "other"
    (folder / "transformer").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "PixArtAlphaPipeline"}))
    (folder / "transformer" / "config.json").write_text(json.dumps({"_class_name": "PixArtTransformer2DModel"}))
    with pytest.raises(CheckpointError, match="not a FLUX or SD3 pipeline"):
        load_diffusers_folder(folder, _manager())


def test_16_bit_weights_stay_as_stored_and_compute_like_the_single_files(tmp_path: Path) -> None:
    """An fp32 compute over fp16 files (`--precision auto` on the CPU): each layer casts as it runs."""
    pipe = write_flux_pipeline(tmp_path, shards=2, dtype=torch.float16)
    manager = ModelManager(device=torch.device("cpu"), dtype=torch.float32, keep_file_dtype=True)
    ckpt = load_diffusers_folder(pipe.folder, manager)
    linears = [m for m in ckpt.model.unet.modules() if isinstance(m, CastLinear)]
    assert linears and all(m.weight.dtype == torch.float16 for m in linears)
    assert {p.dtype for p in ckpt.vae.module.parameters()} == {torch.float16}
    model = load_diffusion_model(pipe.files["model"], manager)
    clip = load_text_encoders([pipe.files["clip_l"], pipe.files["t5xxl"]], "flux", manager)
    _assert_same_parts(ckpt, model, clip, load_vae_file(pipe.files["vae"], manager), _flux_inputs())
