"""Tiny FLUX and SD3 diffusers pipeline folders written the way the hub has them (diffusers-named transformer in
shards with an index, transformers-named encoders, vocab.json/merges.txt, a T5 tokenizer, a scheduler config),
next to the equivalent single files made from the same stand-in tensors (diffusion/tiny_dit.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

from diffusion.tiny_dit import (
    clip_file_state,
    flux_file_state,
    sd3_file_state,
    t5_file_state,
    tiny_flux_arch,
    tiny_sd3_arch,
    tiny_t5_arch,
    vae_file_state,
)

FLUX_DEV_SCHEDULER = {
    "_class_name": "FlowMatchEulerDiscreteScheduler",
    "base_image_seq_len": 256,
    "base_shift": 0.5,
    "max_image_seq_len": 4096,
    "max_shift": 1.15,
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
}
FLUX_SCHNELL_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000,
                          "shift": 1.0, "use_dynamic_shifting": False}  # fmt: skip
SD3_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0}


@dataclass
class TinyPipeline:
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)  # the same parts as single files: model, clip_l, ...


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def write_weights(state: dict[str, torch.Tensor], folder: Path, stem: str, shards: int = 1) -> None:
    """`<stem>.safetensors`, or `shards` files and the `<stem>.safetensors.index.json` naming each tensor's file."""
    folder.mkdir(parents=True, exist_ok=True)
    if shards == 1:
        save_file(state, str(folder / f"{stem}.safetensors"))
        return
    keys = sorted(state)
    weight_map = {}
    for i in range(shards):
        name = f"{stem}-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = keys[i::shards]
        save_file({k: state[k] for k in part}, str(folder / name))
        weight_map.update(dict.fromkeys(part, name))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / f"{stem}.safetensors.index.json").write_text(json.dumps(index))


def _config(folder: Path, config: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, default=list))


def write_clip_tokenizer(folder: Path) -> None:
    from diffusion.tokenizer import clip_vocabulary

    vocab = clip_vocabulary()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab.vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in vocab.merges) + "\n")


def _clip_parts(family: str, role: str, state: dict[str, torch.Tensor], sub: Path) -> None:
    """A CLIP encoder in transformers' names (`text_model.*`; CLIPTextModelWithProjection for SD3's) and config."""
    from diffusion.configs import text_config
    from diffusion.detect import detect_text, family_defaults

    spec = {s["name"]: s for s in family_defaults("sd3")["text_encoders"]}[role]
    shapes = {f"transformer.{k}": tuple(v.shape) for k, v in state.items()}
    arch = detect_text(shapes, "", dict(spec, layout="hf"))
    projected = family == "sd3"
    config = text_config(arch) | {"architectures": ["CLIPTextModelWithProjection" if projected else "CLIPTextModel"],
                                  "model_type": "clip_text_model", "projection_dim": arch.hidden}  # fmt: skip
    _config(sub, config)
    write_weights({k: v for k, v in state.items() if projected or not k.startswith("text_projection")}, sub, "model")


def _t5_parts(folder: Path, encoder: str, tokenizer: str, state: dict[str, torch.Tensor], tok_file: Path) -> None:
    _config(folder / encoder, tiny_t5_arch().config() | {"architectures": ["T5EncoderModel"], "model_type": "t5"})
    write_weights(state, folder / encoder, "model", shards=2)
    (folder / tokenizer).mkdir(parents=True, exist_ok=True)
    (folder / tokenizer / tok_file.name.split(".", 1)[1]).write_bytes(tok_file.read_bytes())


def _vae_parts(folder: Path, file: Path) -> None:
    """The single file's VAE as diffusers saves it (diffusers' names, its config with the latent scale and shift)."""
    from diffusion.loader import load_vae_file
    from diffusion.memory import ModelManager

    vae = load_vae_file(file, ModelManager(device=torch.device("cpu"), dtype=torch.float32, keep_file_dtype=True))
    vae.module.save_pretrained(folder / "vae")


def _model_index(folder: Path, pipeline: str, parts: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": pipeline, "_diffusers_version": "0.30.0"} | {p: ["diffusers", "x"] for p in parts}
    (folder / "model_index.json").write_text(json.dumps(index))


def write_flux_pipeline(
    root: Path, guidance: bool = True, shards: int = 3, dtype: torch.dtype = torch.float32, seed: int = 0
) -> TinyPipeline:
    """FLUX.1-dev (guidance embedding, dynamic shifting) or -schnell, as a folder and as single files."""
    from diffusion.demo_dit import write_t5_tokenizer
    from diffusion.flux import to_diffusers

    arch = tiny_flux_arch(guidance=guidance)
    files = root / "files"
    files.mkdir(parents=True)
    out = TinyPipeline(root / ("FLUX.1-dev" if guidance else "FLUX.1-schnell"))
    reference = _cast(flux_file_state(arch, seed), dtype)
    clip_l, t5 = _cast(clip_file_state("clip_l", seed + 1), dtype), _cast(t5_file_state(seed=seed + 2), dtype)
    for name, state in (("model", reference), ("clip_l", clip_l), ("t5xxl", t5)):
        out.files[name] = files / f"{name}.safetensors"
        save_file(state, str(out.files[name]))
    out.files["vae"] = files / "ae.safetensors"
    save_file(_cast(vae_file_state(seed + 3), dtype), str(out.files["vae"]))
    tok = write_t5_tokenizer(out.files["t5xxl"])
    folder = out.folder
    _model_index(folder, "FluxPipeline", ["transformer", "text_encoder", "text_encoder_2", "vae", "scheduler"])
    _config(folder / "transformer", {"_class_name": "FluxTransformer2DModel"} | arch.config())
    write_weights({k: v.contiguous() for k, v in to_diffusers(reference, arch).items()}, folder / "transformer",
                  "diffusion_pytorch_model", shards)  # fmt: skip
    _clip_parts("flux", "clip_l", clip_l, folder / "text_encoder")
    write_clip_tokenizer(folder / "tokenizer")
    _t5_parts(folder, "text_encoder_2", "tokenizer_2", t5, tok)
    _vae_parts(folder, out.files["vae"])
    (folder / "scheduler").mkdir()
    scheduler = FLUX_DEV_SCHEDULER if guidance else FLUX_SCHNELL_SCHEDULER
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    return out


def write_sd3_pipeline(root: Path, t5: bool = True, spiece: Path | None = None, seed: int = 0) -> TinyPipeline:
    """SD3 medium: CLIP-G in transformers' names in the folder (OpenCLIP's in its single file); with `t5`, T5 and
    its tokenizer (`spiece`: a SentencePiece model, else a tokenizer.json) under text_encoder_3/, tokenizer_3/."""
    from diffusion.demo_dit import write_t5_tokenizer
    from diffusion.dit_text import load_text_encoders
    from diffusion.loader import canonical_text_keys
    from diffusion.memory import ModelManager
    from diffusion.sd3 import to_diffusers

    arch = tiny_sd3_arch()
    files = root / "files"
    files.mkdir(parents=True)
    out = TinyPipeline(root / ("sd3-medium" if t5 else "sd3-medium-no-t5"))
    reference = sd3_file_state(arch, seed)
    states = {"model": reference, "clip_l": clip_file_state("clip_l", seed + 1),
              "clip_g": clip_file_state("clip_g", seed + 4), "t5xxl": t5_file_state(seed=seed + 2)}  # fmt: skip
    for name, state in states.items():
        out.files[name] = files / f"{name}.safetensors"
        save_file(state, str(out.files[name]))
    out.files["vae"] = files / "sd3_vae.safetensors"
    save_file(vae_file_state(seed + 3, family="sd3"), str(out.files["vae"]))
    if spiece is not None:
        tok = files / "t5xxl.spiece.model"
        tok.write_bytes(spiece.read_bytes())
    else:
        tok = write_t5_tokenizer(out.files["t5xxl"])
    folder = out.folder
    parts = ["transformer", "text_encoder", "text_encoder_2", "vae", "scheduler"] + (["text_encoder_3"] if t5 else [])
    _model_index(folder, "StableDiffusion3Pipeline", parts)
    _config(folder / "transformer", {"_class_name": "SD3Transformer2DModel"} | arch.config())
    write_weights({k: v.contiguous() for k, v in to_diffusers(reference, arch).items()}, folder / "transformer",
                  "diffusion_pytorch_model")  # fmt: skip
    _clip_parts("sd3", "clip_l", states["clip_l"], folder / "text_encoder")
    manager = ModelManager(device=torch.device("cpu"), dtype=torch.float32)
    clip_g = load_text_encoders([out.files["clip_g"]], "sd3", manager).clips["clip_g"].units[0].module
    hf_names = {k: v.contiguous() for k, v in canonical_text_keys(clip_g).items() if not k.endswith("position_ids")}
    _clip_parts("sd3", "clip_g", hf_names, folder / "text_encoder_2")
    write_clip_tokenizer(folder / "tokenizer")
    write_clip_tokenizer(folder / "tokenizer_2")
    if t5:
        _t5_parts(folder, "text_encoder_3", "tokenizer_3", states["t5xxl"], tok)
    _vae_parts(folder, out.files["vae"])
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SD3_SCHEDULER))
    return out
