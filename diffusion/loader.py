"""From model files to the MODEL, CLIP and VAE socket values: single-file checkpoints, VAE files, diffusers folders."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from diffusion import offline
from diffusion.checkpoint import CheckpointError, TensorFile, assign_weights, build_empty
from diffusion.clip_vision import CLIPVision, load_clip_vision_state
from diffusion.configs import text_config, unet_config, vae_config
from diffusion.convert import (
    convert,
    fix_vae_attention,
    openclip_to_hf,
    text_table,
    unet_table,
    vae_table,
)
from diffusion.detect import (
    UNET_PREFIX,
    VAE_PREFIX,
    ModelInfo,
    TextArch,
    UNetArch,
    UnknownModel,
    VAEArch,
    detect,
    detect_vae,
    family_defaults,
    guess_family,
)
from diffusion.flux import is_flux
from diffusion.memory import ModelManager
from diffusion.model import DiffusionModel
from diffusion.precision import fastest_memory_format
from diffusion.schedulers import DiscreteSchedule
from diffusion.sd3 import is_sd3
from diffusion.text_encoder import EncoderUnit, TextEncoder
from diffusion.tokenizer import ClipTokenizer
from diffusion.unclip import read_augmentor
from diffusion.vae import VAE

UNCLIP_EMBEDDER = "embedder."


@dataclass(eq=False)
class Checkpoint:
    info: ModelInfo
    model: DiffusionModel | None
    clip: TextEncoder | None
    vae: VAE | None


def build_unet(arch: UNetArch, family: str) -> nn.Module:
    cls = offline.diffusers().UNet2DConditionModel
    return build_empty(lambda: cls.from_config(unet_config(arch, family)))


def build_vae(arch: VAEArch) -> nn.Module:
    cls = offline.diffusers().AutoencoderKL
    return build_empty(lambda: cls.from_config(vae_config(arch)))


def build_text(arch: TextArch) -> nn.Module:
    tf = offline.transformers()
    config = tf.CLIPTextConfig(**text_config(arch))
    config._attn_implementation = "sdpa"
    cls = tf.CLIPTextModelWithProjection if arch.projection_dim else tf.CLIPTextModel
    return build_empty(lambda: cls(config))


def family_schedule(family: str) -> DiscreteSchedule:
    """The discrete training schedule a family's models are built with (its bundled beta range and timestep
    count); families sampled on another schedule (flow models) have none."""
    d = family_defaults(family)
    if "beta_start" not in d:
        raise ValueError(f"{family} models have no discrete timestep schedule (they are sampled as {d['prediction']})")
    return DiscreteSchedule.scaled_linear(d["beta_start"], d["beta_end"], d["num_timesteps"])


def make_model(info: ModelInfo, unet: nn.Module, manager: ModelManager) -> DiffusionModel:
    d = family_defaults(info.family)
    return DiffusionModel(
        unet=fastest_memory_format(unet, manager.device, manager.dtype),
        family=info.family,
        prediction=info.prediction,
        schedule=family_schedule(info.family),
        manager=manager,
        latent_rgb_factors=tuple(tuple(r) for r in d["latent_rgb_factors"]),
        latent_rgb_bias=tuple(d["latent_rgb_bias"]),
    )


def text_state(state: Mapping[str, torch.Tensor], arch: TextArch) -> dict[str, torch.Tensor]:
    """Text-encoder tensors under transformers' names, in the with-projection form (`text_model.*`)."""
    if arch.layout == "openclip":
        return openclip_to_hf(state, arch.prefix, arch)
    out, _ = convert(state, text_table(arch), arch.prefix)
    return {k: v for k, v in out.items() if not k.endswith("position_ids")}


def fit_text_keys(state: Mapping[str, torch.Tensor], module: nn.Module) -> dict[str, torch.Tensor]:
    """transformers 5's CLIPTextModel has no `text_model.` level (CLIPTextModelWithProjection keeps it)."""
    if hasattr(module, "text_model"):
        return dict(state)
    return {k.removeprefix("text_model."): v for k, v in state.items()}


def canonical_text_keys(module: nn.Module) -> dict[str, torch.Tensor]:
    """A text encoder's state dict in the with-projection naming (`text_model.*`), the inverse of fit_text_keys."""
    sd = module.state_dict()
    if hasattr(module, "text_model"):
        return dict(sd)
    return {f"text_model.{k}": v for k, v in sd.items()}


def load_checkpoint(
    path: Path,
    manager: ModelManager,
    embedding_dirs: Sequence[Path] = (),
    want_model: bool = True,
    want_clip: bool = True,
    want_vae: bool = True,
) -> Checkpoint:
    """A single-file checkpoint in the LDM layout: detect, build empty modules, assign the file's tensors. FLUX and
    SD3 checkpoints go to diffusion.dit_loader."""
    tensors = TensorFile(path)
    if is_flux(tensors.shapes) or is_sd3(tensors.shapes):
        from diffusion.dit_loader import load_dit_checkpoint

        return load_dit_checkpoint(tensors, manager, embedding_dirs, want_model, want_clip, want_vae)
    try:
        info = detect(tensors.shapes)
    except UnknownModel as exc:
        raise CheckpointError(f"{Path(path).name}: {exc}") from exc
    except KeyError as exc:
        raise CheckpointError(f"{Path(path).name}: incomplete {info_hint(tensors)} layout, missing {exc}") from exc
    name = Path(path).name
    model = clip = vae = None
    dtype, keep = manager.dtype, manager.keep_file_dtype
    if want_model and info.unet is not None:
        unet_sd, _ = convert(tensors, unet_table(info.unet), UNET_PREFIX)
        unet = assign_weights(build_unet(info.unet, info.family), unet_sd, f"{name}: UNet", dtype, keep)
        model = make_model(info, unet, manager)
        if info.unet.class_embedding and info.unet.adm_in_channels:
            model.extra["noise_augmentor"] = read_augmentor(tensors, info.unet.adm_in_channels, name)
    if want_vae and info.vae is not None:
        vae_sd, _ = convert(tensors, vae_table(info.vae), VAE_PREFIX)
        vae_sd = fix_vae_attention(vae_sd, to_linear=True)
        module = assign_weights(build_vae(info.vae), vae_sd, f"{name}: VAE", dtype, keep)
        vae = VAE(module, info.vae.scaling_factor, manager)
    if want_clip and info.text:
        if len(info.text) != len(family_defaults(info.family)["text_encoders"]):
            raise CheckpointError(f"{name}: the checkpoint holds only part of the {info.family} text encoders")
        units = []
        for arch in info.text:
            module = build_text(arch)
            state = fit_text_keys(text_state(tensors, arch), module)
            module = assign_weights(module, state, f"{name}: text encoder", dtype, keep)
            units.append(EncoderUnit(arch, module))
        clip = TextEncoder(info.family, tuple(units), ClipTokenizer(), manager, tuple(embedding_dirs))
    return Checkpoint(info, model, clip, vae)


def load_unclip_checkpoint(
    path: Path, manager: ModelManager, embedding_dirs: Sequence[Path] = ()
) -> tuple[Checkpoint, CLIPVision]:
    """An SD 2.1 unCLIP checkpoint: the model (its noise augmentor attached), text encoder, VAE, and the CLIP
    vision encoder it was trained with, stored under `embedder.*`."""
    name = Path(path).name
    checkpoint = load_checkpoint(path, manager, embedding_dirs)
    if checkpoint.model is None or "noise_augmentor" not in checkpoint.model.extra:
        raise CheckpointError(f"{name}: not an unCLIP checkpoint (its UNet takes no image embedding)")
    tensors = TensorFile(path)
    if not any(k.startswith(UNCLIP_EMBEDDER) for k in tensors.shapes):
        raise CheckpointError(f"{name}: holds no CLIP vision encoder ({UNCLIP_EMBEDDER}*)")
    return checkpoint, load_clip_vision_state(tensors, manager, name)


def info_hint(tensors: TensorFile) -> str:
    return "Stable Diffusion" if any(k.startswith(UNET_PREFIX) for k in tensors) else "unknown"


def load_vae_file(path: Path, manager: ModelManager) -> VAE:
    """A standalone VAE in the LDM layout (`encoder.*`/`decoder.*`, optionally under first_stage_model.).

    The SD 1.x and SDXL VAEs have identical shapes; an "xl" in the file name selects SDXL's latent scaling. The
    16-channel VAEs of FLUX and SD3 differ only in scale and shift: "sd3" in the name selects SD3's."""
    tensors = TensorFile(path)
    name = Path(path).name
    prefix = VAE_PREFIX if f"{VAE_PREFIX}encoder.conv_in.weight" in tensors.shapes else ""
    family = vae_family(name, tensors.shapes.get(f"{prefix}decoder.conv_in.weight", (0, 0))[1])
    return vae_from(tensors, prefix, family, manager)


def vae_from(tensors: TensorFile, prefix: str, family: str, manager: ModelManager) -> VAE:
    """The LDM-layout VAE under `prefix` in a file, with `family`'s latent scale and shift."""
    name = tensors.path.name
    try:
        arch = detect_vae(tensors.shapes, prefix, family)
    except (UnknownModel, KeyError) as exc:
        raise CheckpointError(f"{name}: not a VAE in the LDM layout ({exc})") from exc
    state, _ = convert(tensors, vae_table(arch), prefix)
    state = fix_vae_attention(state, to_linear=True)
    module = assign_weights(build_vae(arch), state, f"{name}: VAE", manager.dtype, manager.keep_file_dtype)
    return VAE(module, arch.scaling_factor, manager, arch.shift_factor)


def vae_family(file_name: str, latent_channels: int) -> str:
    """The family whose latent scaling a standalone VAE gets, from its latent width and file name."""
    lower = file_name.lower()
    if latent_channels == 16:
        return "sd3" if "sd3" in lower or "sd35" in lower else "flux"
    return "sdxl" if "xl" in lower else "sd1"


def load_diffusers_folder(path: Path, manager: ModelManager, embedding_dirs: Sequence[Path] = ()) -> Checkpoint:
    """A diffusers pipeline folder from local files only: SD 1.x/2.x/SDXL (unet/, vae/, text_encoder/[,
    text_encoder_2/]) here, FLUX and SD3 (transformer/, ...) in diffusion.dit_folder."""
    path = Path(path)
    if not (path / "model_index.json").is_file():
        raise CheckpointError(f"{path.name}: not a diffusers pipeline folder (no model_index.json)")
    from diffusion.dit_folder import is_dit_folder, load_dit_folder

    if is_dit_folder(path):
        return load_dit_folder(path, manager, embedding_dirs)
    if not (path / "unet" / "config.json").is_file():
        raise CheckpointError(f"{path.name}: not a diffusers pipeline folder (no unet/ or transformer/)")
    diffusers, tf = offline.diffusers(), offline.transformers()
    dtype = manager.dtype
    common = {"local_files_only": True, "torch_dtype": dtype}
    unet = diffusers.UNet2DConditionModel.from_pretrained(path / "unet", **common).eval().requires_grad_(False)
    cfg = unet.config
    family = guess_family(int(cfg.cross_attention_dim), cfg.addition_embed_type == "text_time")
    scheduler_cfg = path / "scheduler" / "scheduler_config.json"
    prediction = family_defaults(family)["prediction"]
    if scheduler_cfg.is_file():
        kind = json.loads(scheduler_cfg.read_text()).get("prediction_type", "epsilon")
        prediction = "v" if kind == "v_prediction" else "eps"
    info = ModelInfo(family=family, prediction=prediction, unet=None, vae=None, text=())
    model = make_model(info, unet, manager)
    vae_module = diffusers.AutoencoderKL.from_pretrained(path / "vae", **common).eval().requires_grad_(False)
    vae = VAE(vae_module, float(vae_module.config.scaling_factor), manager)
    units = []
    for spec, sub in zip(family_defaults(family)["text_encoders"], ("text_encoder", "text_encoder_2"), strict=False):
        cls = tf.CLIPTextModelWithProjection if spec["pooled"] else tf.CLIPTextModel
        module = cls.from_pretrained(path / sub, **common).eval().requires_grad_(False)
        c = module.config
        arch = TextArch(
            name=spec["name"],
            prefix="",
            layout="hf",
            hidden=c.hidden_size,
            layers=c.num_hidden_layers,
            intermediate=c.intermediate_size,
            heads=c.num_attention_heads,
            vocab=c.vocab_size,
            max_positions=c.max_position_embeddings,
            projection_dim=getattr(c, "projection_dim", None) if spec["pooled"] else None,
            hidden_act=c.hidden_act,
            pad_token=spec["pad_token"],
            default_layer=spec["default_layer"],
            final_norm_on_skip=spec["final_norm_on_skip"],
            pooled=spec["pooled"],
        )
        units.append(EncoderUnit(arch, module))
    clip = TextEncoder(family, tuple(units), ClipTokenizer(), manager, tuple(embedding_dirs))
    return Checkpoint(info, model, clip, vae)
