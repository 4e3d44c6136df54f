"""Standalone diffusion-model files (UNETLoader): FLUX and SD3 transformers in the reference or diffusers layout,
built on the meta device and given the file's tensors, optionally stored in fp8 and upcast layer by layer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from diffusion import offline
from diffusion.checkpoint import CheckpointError, TensorFile, assign_weights, build_empty
from diffusion.detect import VAE_PREFIX, ModelInfo, UnknownModel, _summary, detect_vae, family_defaults
from diffusion.flow import FlowModel, flow_schedule
from diffusion.flux import FluxArch, detect_flux, is_flux
from diffusion.flux import to_diffusers as flux_to_diffusers
from diffusion.memory import ModelManager
from diffusion.precision import CastLinear
from diffusion.sd3 import SD3Arch, detect_sd3, is_sd3
from diffusion.sd3 import to_diffusers as sd3_to_diffusers

if TYPE_CHECKING:
    from diffusion.loader import Checkpoint

TEXT_ENCODERS_PREFIX = "text_encoders."
WEIGHT_DTYPES = {
    "default": None,
    "fp8_e4m3fn": torch.float8_e4m3fn,
    "fp8_e4m3fn_fast": torch.float8_e4m3fn,
    "fp8_e5m2": torch.float8_e5m2,
}


def store_linears(module: nn.Module, dtype: torch.dtype, compute: torch.dtype) -> int:
    """Keep every Linear weight in `dtype` (fp8), cast to `compute` per call (diffusion.precision); returns how
    many were converted."""
    count = 0
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            layer.weight = nn.Parameter(layer.weight.data.to(dtype), requires_grad=False)
            layer.__class__ = CastLinear
            layer.compute_dtype = compute  # type: ignore[assignment]
            count += 1
    return count


def build_flux(arch: FluxArch) -> nn.Module:
    cls = offline.diffusers().FluxTransformer2DModel
    return build_empty(lambda: cls.from_config(arch.config()))


def build_sd3(arch: SD3Arch) -> nn.Module:
    cls = offline.diffusers().SD3Transformer2DModel
    return build_empty(lambda: cls.from_config(arch.config()))


def flow_model(
    module: nn.Module,
    family: str,
    shift: float,
    latent_channels: int,
    manager: ModelManager,
    shift_kind: str | None = None,
) -> FlowModel:
    """The MODEL value of a transformer, sampling with a noise-level shift of `shift_kind` (the family's own kind
    when None: FLUX's exponential one, SD3's multiplying one)."""
    d = family_defaults(family)
    kind = shift_kind or d["shift_kind"]
    return FlowModel(
        unet=module,
        family=family,
        prediction="flow",
        schedule=flow_schedule(kind, shift),
        manager=manager,
        latent_rgb_factors=tuple(tuple(r) for r in d["latent_rgb_factors"]),
        latent_rgb_bias=tuple(d["latent_rgb_bias"]),
        shift_kind=kind,
        shift=shift,
        channels=latent_channels,
    )


def transformer_model(tensors: TensorFile, name: str, manager: ModelManager) -> FlowModel:
    """The FLUX or SD3 transformer a file holds (alone, or under `model.diffusion_model.` in a full checkpoint)."""
    shapes = tensors.shapes
    dtype, keep = manager.dtype, manager.keep_file_dtype
    if is_flux(shapes):
        arch = detect_flux(shapes)
        module = assign_weights(build_flux(arch), flux_to_diffusers(tensors, arch), f"{name}: FLUX transformer",
                                dtype, keep)  # fmt: skip
        return flow_model(module, "flux", family_defaults("flux")["shift"][arch.variant], arch.latent_channels, manager)
    if is_sd3(shapes):
        sd3 = detect_sd3(shapes)
        module = assign_weights(build_sd3(sd3), sd3_to_diffusers(tensors, sd3), f"{name}: SD3 transformer", dtype, keep)
        return flow_model(module, "sd3", family_defaults("sd3")["shift"]["default"], sd3.in_channels, manager)
    raise UnknownModel(f"not a FLUX or SD3 diffusion model; found {_summary(shapes)}")


def load_diffusion_model(path: Path, manager: ModelManager, weight_dtype: str = "default") -> FlowModel:
    """A FLUX or SD3 transformer file; the family, variant and sizes come from its tensors."""
    if weight_dtype not in WEIGHT_DTYPES:
        raise CheckpointError(f"weight_dtype: unknown {weight_dtype!r}; choose one of {', '.join(WEIGHT_DTYPES)}")
    name = Path(path).name
    try:
        model = transformer_model(TensorFile(path), name, manager)
    except UnknownModel as exc:
        raise CheckpointError(f"{name}: {exc}") from exc
    narrow = WEIGHT_DTYPES[weight_dtype]
    if narrow is not None:
        store_linears(model.unet, narrow, manager.dtype)
    return model


def load_dit_checkpoint(
    tensors: TensorFile,
    manager: ModelManager,
    embedding_dirs: Sequence[Path] = (),
    want_model: bool = True,
    want_clip: bool = True,
    want_vae: bool = True,
) -> Checkpoint:
    """A full FLUX or SD3 checkpoint: the transformer under `model.diffusion_model.`, and the parts it bundles:
    the VAE under `first_stage_model.`, text encoders under `text_encoders.clip_l/clip_g/t5xxl.`."""
    from diffusion.dit_text import load_text_encoders
    from diffusion.loader import Checkpoint, vae_from

    name = tensors.path.name
    family = "flux" if is_flux(tensors.shapes) else "sd3"
    try:
        model = transformer_model(tensors, name, manager) if want_model else None
        has_vae = f"{VAE_PREFIX}encoder.conv_in.weight" in tensors.shapes
        vae = vae_from(tensors, VAE_PREFIX, family, manager) if want_vae and has_vae else None
        has_text = any(k.startswith(TEXT_ENCODERS_PREFIX) for k in tensors.shapes)
        clip = load_text_encoders([tensors.path], family, manager, embedding_dirs) if want_clip and has_text else None
        vae_arch = detect_vae(tensors.shapes, VAE_PREFIX, family) if has_vae else None
    except UnknownModel as exc:
        raise CheckpointError(f"{name}: {exc}") from exc
    return Checkpoint(ModelInfo(family, "flow", None, vae_arch, ()), model, clip, vae)
