"""FLUX.1 and SD3/SD3.5 diffusers pipeline folders, as the hub has them, from local files only.

A folder holds `model_index.json`, `transformer/` (config.json and diffusers-named weights, maybe sharded),
`text_encoder/` + `tokenizer/` (CLIP-L), `text_encoder_2/` + `tokenizer_2/` (T5 for FLUX, CLIP-G for SD3),
`text_encoder_3/` + `tokenizer_3/` (SD3's T5; "no T5" variants leave it out), `vae/` and `scheduler/`. Each part
is built on the meta device and given its tensors like the single files (diffusion.dit_loader, dit_text), so a
folder gives the same FlowModel, DiTTextEncoder and VAE, with the same precision handling; the tokenizers are the
folder's own and the sampling shift is its scheduler's.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffusion import offline
from diffusion.checkpoint import CheckpointError, assign_weights, build_empty, component_weights
from diffusion.detect import ModelInfo, family_defaults
from diffusion.flow import FlowModel
from diffusion.flux import FluxArch
from diffusion.memory import ModelManager
from diffusion.sd3 import SD3Arch
from diffusion.vae import VAE

if TYPE_CHECKING:
    from diffusion.dit_text import DiTTextEncoder
    from diffusion.loader import Checkpoint

PIPELINE_PREFIXES = (("Flux", "flux"), ("StableDiffusion3", "sd3"))  # model_index.json `_class_name`s
TRANSFORMER_CLASSES = {"FluxTransformer2DModel": "flux", "SD3Transformer2DModel": "sd3"}
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model"
TRANSFORMERS_WEIGHTS = "model"


@dataclass(frozen=True)
class EncoderPart:
    role: str  # clip_l, clip_g or t5xxl
    encoder: str  # its subfolders
    tokenizer: str
    required: bool = True


ENCODER_PARTS = {
    "flux": (EncoderPart("clip_l", "text_encoder", "tokenizer"), EncoderPart("t5xxl", "text_encoder_2", "tokenizer_2")),
    "sd3": (
        EncoderPart("clip_l", "text_encoder", "tokenizer"),
        EncoderPart("clip_g", "text_encoder_2", "tokenizer_2"),
        EncoderPart("t5xxl", "text_encoder_3", "tokenizer_3", required=False),
    ),
}


@dataclass(frozen=True)
class PipelineFolder:
    """What a folder's JSON files say, before any weights are read."""

    path: Path
    family: str  # "flux" or "sd3"
    variant: str  # dev/schnell, sd3-medium/sd3.5-large/sd3.5-medium
    transformer_config: dict[str, Any]  # the transformer's constructor arguments, defaults filled in
    shift_kind: str
    shift: float


def _read_json(path: Path, folder: Path) -> dict[str, Any]:
    where = path.relative_to(folder)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{folder.name}: missing {where.parent}/ ({where.name})") from exc
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder.name}: {where} is not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{folder.name}: {where} is not a JSON object")
    return data


def _pipeline_class(path: Path) -> str:
    index = path / "model_index.json"
    return str(_read_json(index, path).get("_class_name", "")) if index.is_file() else ""


def is_dit_folder(path: Path) -> bool:
    """A FLUX or SD3 pipeline (by its model_index.json class), or any pipeline with a `transformer/`."""
    path = Path(path)
    name = _pipeline_class(path)
    return any(name.startswith(p) for p, _f in PIPELINE_PREFIXES) or (path / "transformer").is_dir()


def _family(path: Path, config: Mapping[str, Any]) -> str:
    transformer = str(config.get("_class_name", ""))
    if transformer in TRANSFORMER_CLASSES:
        return TRANSFORMER_CLASSES[transformer]
    pipeline = _pipeline_class(path)
    for prefix, family in PIPELINE_PREFIXES:
        if pipeline.startswith(prefix):
            return family
    raise CheckpointError(f"{path.name}: not a FLUX or SD3 pipeline (transformer class {transformer or 'unknown'!r}, "
                          f"pipeline {pipeline or 'unknown'!r})")  # fmt: skip


def _full_config(cls: type, config: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor arguments `config` gives, with the class' defaults for those it leaves out (hub configs
    written by older diffusers lack newer arguments)."""
    params = inspect.signature(cls.__init__).parameters
    defaults = {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}
    return defaults | {k: v for k, v in config.items() if k in params}


def _transformer_class(family: str) -> type:
    d = offline.diffusers()
    return d.FluxTransformer2DModel if family == "flux" else d.SD3Transformer2DModel


def default_shift(family: str, variant: str) -> float:
    shifts = family_defaults(family)["shift"]
    return float(shifts.get(variant, shifts.get("default", 1.0)))


def scheduler_shift(folder: Path, family: str, variant: str) -> tuple[str, float]:
    """The shift kind and amount of the folder's FlowMatchEulerDiscreteScheduler config, as diffusers applies it: a
    fixed `shift` moves t to shift*t / (1 + (shift-1)*t) (SD3's kind); `use_dynamic_shifting` moves it FLUX's
    exponential way by a mu that grows with the image from base_shift to max_shift (at max_image_seq_len patches,
    1024x1024 for FLUX). A Loom model samples at one shift, so it takes max_shift, where ModelSamplingFlux's
    defaults put it too. Without scheduler/, the family's default."""
    path = folder / "scheduler" / "scheduler_config.json"
    if not path.is_file():
        return family_defaults(family)["shift_kind"], default_shift(family, variant)
    cfg = _read_json(path, folder)
    kind = cfg.get("time_shift_type") or "exponential"
    if cfg.get("use_dynamic_shifting"):
        if kind != "exponential":
            raise CheckpointError(f"{folder.name}: scheduler time_shift_type {kind!r} is not supported (exponential)")
        return "flux", float(cfg.get("max_shift") or 1.15)
    shift = cfg.get("shift", 1.0)
    if not isinstance(shift, int | float) or shift <= 0:
        raise CheckpointError(f"{folder.name}: scheduler shift {shift!r} is not a positive number")
    return "sd3", float(shift)


def inspect_folder(path: Path) -> PipelineFolder:
    """Family, variant, transformer configuration and sampling shift of a pipeline folder."""
    path = Path(path)
    if not (path / "model_index.json").is_file():
        raise CheckpointError(f"{path.name}: not a diffusers pipeline folder (no model_index.json)")
    if not (path / "transformer").is_dir():
        raise CheckpointError(f"{path.name}: missing transformer/ (the diffusion transformer)")
    raw = _read_json(path / "transformer" / "config.json", path)
    family = _family(path, raw)
    config = _full_config(_transformer_class(family), raw)
    try:
        variant = FluxArch.from_config(config).variant if family == "flux" else SD3Arch.from_config(config).variant
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: transformer/config.json is incomplete ({exc})") from exc
    missing = missing_parts(path, family)
    if missing:
        raise CheckpointError(f"{path.name}: missing {', '.join(missing)}")
    kind, shift = scheduler_shift(path, family, variant)
    return PipelineFolder(path, family, variant, config, kind, shift)


def missing_parts(path: Path, family: str) -> list[str]:
    """The required subfolders a folder lacks, each named with what it holds (a tokenizer is required where its
    encoder is there)."""
    missing = [] if (path / "vae").is_dir() else [f"vae/ (the {family} autoencoder)"]
    for part in ENCODER_PARTS[family]:
        if not (path / part.encoder).is_dir():
            if part.required:
                missing.append(f"{part.encoder}/ (the {part.role} text encoder)")
        elif not (path / part.tokenizer).is_dir():
            missing.append(f"{part.tokenizer}/ (the {part.role} tokenizer)")
    return missing


def load_transformer(folder: PipelineFolder, manager: ModelManager) -> FlowModel:
    from diffusion.dit_loader import flow_model

    cls = _transformer_class(folder.family)
    tensors = component_weights(folder.path / "transformer", DIFFUSERS_WEIGHTS)
    module = build_empty(lambda: cls.from_config(folder.transformer_config))
    module = assign_weights(module, tensors, f"{folder.path.name}/transformer", manager.dtype, manager.keep_file_dtype)
    config = folder.transformer_config
    channels = int(config["in_channels"]) // (4 if folder.family == "flux" else 1)
    return flow_model(module, folder.family, folder.shift, channels, manager, folder.shift_kind)


def load_vae(folder: PipelineFolder, manager: ModelManager) -> VAE:
    """`vae/`: a 16-channel AutoencoderKL whose latent scale and shift its config holds (the family's where not)."""
    path = folder.path
    cls = offline.diffusers().AutoencoderKL
    raw = _read_json(path / "vae" / "config.json", path)
    config = _full_config(cls, raw)
    d = family_defaults(folder.family)
    scale = raw.get("scaling_factor") or d["vae_scaling_factor"]  # not AutoencoderKL's default, SD's 0.18215
    shift = raw.get("shift_factor")
    shift = d.get("vae_shift_factor", 0.0) if shift is None else shift
    module = build_empty(lambda: cls.from_config(config))
    tensors = component_weights(path / "vae", DIFFUSERS_WEIGHTS)
    module = assign_weights(module, tensors, f"{path.name}/vae", manager.dtype, manager.keep_file_dtype)
    return VAE(module, float(scale), manager, float(shift))


def _clip_view(tensors: Any, what: str) -> Any:
    """The CLIP tensors seen under `transformer.text_model.*` (the hub stores `text_model.*`; transformers 5
    saves a CLIPTextModel without that level)."""
    from diffusion.dit_text import HF_MARK, KeyView

    if HF_MARK in tensors.shapes:
        return KeyView(tensors, "", "transformer.")
    if HF_MARK.removeprefix("text_model.") in tensors.shapes:
        return KeyView(tensors, "", "transformer.text_model.")
    raise CheckpointError(f"{what}: not a CLIP text encoder (no {HF_MARK})")


def _t5_tokenizer_file(folder: Path, sub: str) -> Path:
    from diffusion.t5 import TOKENIZER_FILES

    for name in TOKENIZER_FILES:
        if (folder / sub / name).is_file():
            return folder / sub / name
    raise CheckpointError(f"{folder.name}: missing {sub}/ (the T5 tokenizer: {' or '.join(TOKENIZER_FILES)})")


def load_text(folder: PipelineFolder, manager: ModelManager, embedding_dirs: Sequence[Path] = ()) -> DiTTextEncoder:
    """The family's text encoders from their subfolders, each with the tokenizer beside it; an optional one that
    is absent (SD3's T5) is left out, as the single-file path leaves out an encoder not given."""
    from diffusion.dit_text import DiTTextEncoder, T5Unit, clip_encoder
    from diffusion.t5 import T5Tokenizer, build_t5, detect_t5, is_t5
    from diffusion.tokenizer import ClipTokenizer, folder_vocabulary

    path, family = folder.path, folder.family
    clips = {}
    t5 = None
    for part in ENCODER_PARTS[family]:
        if not (path / part.encoder).is_dir():
            continue  # an optional one (inspect_folder refused a folder without a required one)
        what = f"{path.name}/{part.encoder}"
        tensors = component_weights(path / part.encoder, TRANSFORMERS_WEIGHTS)
        if part.role == "t5xxl":
            if not is_t5(tensors.shapes):
                raise CheckpointError(f"{what}: not a T5 encoder")
            tokenizer = T5Tokenizer(_t5_tokenizer_file(path, part.tokenizer))
            t5 = T5Unit(build_t5(detect_t5(tensors.shapes), tensors, f"{what}: T5", manager.dtype), tokenizer)
            continue
        clip_tokenizer = ClipTokenizer(folder_vocabulary(path / part.tokenizer))
        view = _clip_view(tensors, what)
        clips[part.role] = clip_encoder(view, "hf", part.role, family, what, manager, embedding_dirs, clip_tokenizer)
    return DiTTextEncoder(family, clips, t5, manager)


def load_dit_folder(path: Path, manager: ModelManager, embedding_dirs: Sequence[Path] = ()) -> Checkpoint:
    """A FLUX or SD3 pipeline folder as MODEL, CLIP and VAE (DiffusersLoader); a missing part is refused before any
    weights are read."""
    from diffusion.loader import Checkpoint

    folder = inspect_folder(path)
    model = load_transformer(folder, manager)
    clip = load_text(folder, manager, embedding_dirs)
    vae = load_vae(folder, manager)
    return Checkpoint(ModelInfo(folder.family, "flow", None, None, ()), model, clip, vae)
