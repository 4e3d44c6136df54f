"""Standalone diffusion-model files (UNETLoader): FLUX and SD3 transformers in the reference or diffusers layout,
built on the meta device and given the file's tensors, optionally stored in fp8 and upcast layer by layer."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from diffusion import offline
from diffusion.checkpoint import CheckpointError, TensorFile, assign_weights, build_empty
from diffusion.detect import UnknownModel, _summary, family_defaults
from diffusion.flow import FlowModel, flow_schedule
from diffusion.flux import FluxArch, detect_flux, is_flux
from diffusion.flux import to_diffusers as flux_to_diffusers
from diffusion.memory import ModelManager
from diffusion.precision import CastLinear

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


def flux_model(module: nn.Module, arch: FluxArch, manager: ModelManager) -> FlowModel:
    d = family_defaults("flux")
    shift = d["shift"][arch.variant]
    return FlowModel(
        unet=module,
        family="flux",
        prediction="flow",
        schedule=flow_schedule("flux", shift),
        manager=manager,
        latent_rgb_factors=tuple(tuple(r) for r in d["latent_rgb_factors"]),
        latent_rgb_bias=tuple(d["latent_rgb_bias"]),
        shift_kind="flux",
        shift=shift,
        latent_format=arch.latent_channels,
    )


def load_diffusion_model(path: Path, manager: ModelManager, weight_dtype: str = "default") -> FlowModel:
    """A FLUX or SD3 transformer file; the family, variant and sizes come from its tensors."""
    if weight_dtype not in WEIGHT_DTYPES:
        raise CheckpointError(f"weight_dtype: unknown {weight_dtype!r}; choose one of {', '.join(WEIGHT_DTYPES)}")
    tensors = TensorFile(path)
    name = Path(path).name
    try:
        if not is_flux(tensors.shapes):
            raise UnknownModel(f"not a FLUX diffusion model; found {_summary(tensors.shapes)}")
        arch = detect_flux(tensors.shapes)
        state = flux_to_diffusers(tensors, arch)
        module = assign_weights(
            build_flux(arch), state, f"{name}: FLUX transformer", manager.dtype, manager.keep_file_dtype
        )
        model = flux_model(module, arch, manager)
    except UnknownModel as exc:
        raise CheckpointError(f"{name}: {exc}") from exc
    narrow = WEIGHT_DTYPES[weight_dtype]
    if narrow is not None:
        store_linears(model.unet, narrow, manager.dtype)
    return model
