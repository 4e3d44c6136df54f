"""FLUX and SD3 nodes: the standalone diffusion-model and text-encoder loaders, their prompt encoders, guidance,
the flow models' sampling shift, and the 16-channel empty latent."""

from __future__ import annotations

from typing import Any

from engine.context import NodeContext
from engine.environment import NodeEnvironment
from engine.native import Combo, Float, Int, Out, Socket, String, node
from nodes.shared import embedding_dirs, file_identity, model_file, model_files, model_manager

MAX_RESOLUTION = 16384
WEIGHT_DTYPES = ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]
DUAL_CLIP_TYPES = ["sdxl", "sd3", "flux", "hunyuan_video", "hidream"]
DEVICES = ["default", "cpu"]
LOOM_FAMILIES = {"flux": "flux", "sd3": "sd3"}


def _unet_identity(unet_name: str, weight_dtype: str = "default", env: NodeEnvironment | None = None) -> Any:
    return [file_identity(env, "diffusion_models", unet_name), weight_dtype]


def _clips_identity(env: NodeEnvironment | None = None, **inputs: Any) -> Any:
    names = [v for k, v in sorted(inputs.items()) if k.startswith("clip_name")]
    return [[file_identity(env, "text_encoders", n) for n in names], inputs.get("type")]


def _family(kind: str, node_name: str) -> str:
    if kind not in LOOM_FAMILIES:
        raise ValueError(f"type: {node_name} type {kind!r} is not supported by Loom yet; use one of "
                         f"{', '.join(LOOM_FAMILIES)}")  # fmt: skip
    return LOOM_FAMILIES[kind]


def _raise_named(input_name: str, exc: Exception) -> None:
    from diffusion.checkpoint import CheckpointError

    if isinstance(exc, CheckpointError):
        raise CheckpointError(f"{input_name}: {exc}") from exc
    raise exc


@node(
    category="advanced/loaders",
    outputs=[Out("MODEL")],
    display_name="Load Diffusion Model",
    fingerprint=_unet_identity,
)
def UNETLoader(
    unet_name: str = Combo(model_files("diffusion_models")),
    weight_dtype: str = Combo(WEIGHT_DTYPES),
    *,
    ctx: NodeContext,
) -> Any:
    """A standalone FLUX transformer from models/diffusion_models (reference or diffusers layout, any float or fp8
    weights); fp8 weight_dtype keeps linear weights in fp8 and upcasts them layer by layer."""
    from diffusion.dit_loader import load_diffusion_model

    path = model_file(ctx.env, "diffusion_models", unet_name, "unet_name")
    try:
        return load_diffusion_model(path, model_manager(ctx.env), weight_dtype)
    except Exception as exc:
        _raise_named("unet_name", exc)


def _load_clips(ctx: NodeContext, names: list[tuple[str, str]], family: str) -> Any:
    from diffusion.dit_text import load_text_encoders

    paths = [model_file(ctx.env, "text_encoders", name, input_name) for input_name, name in names]
    try:
        return load_text_encoders(paths, family, model_manager(ctx.env), embedding_dirs(ctx.env))
    except Exception as exc:
        _raise_named(names[0][0], exc)


@node(category="advanced/loaders", outputs=[Out("CLIP")], display_name="DualCLIPLoader", fingerprint=_clips_identity)
def DualCLIPLoader(
    clip_name1: str = Combo(model_files("text_encoders")),
    clip_name2: str = Combo(model_files("text_encoders")),
    type: str = Combo(DUAL_CLIP_TYPES),
    device: str = Combo(DEVICES, "default", optional=True),
    *,
    ctx: NodeContext,
) -> Any:
    """Two text encoders as one CLIP: for flux, CLIP-L and T5-XXL (in either order)."""
    family = _family(type, "DualCLIPLoader")
    return _load_clips(ctx, [("clip_name1", clip_name1), ("clip_name2", clip_name2)], family)


@node(category="advanced/conditioning/flux", outputs=["CONDITIONING"])
def CLIPTextEncodeFlux(
    clip: Any = Socket("CLIP"),
    clip_l: str = String(multiline=True, dynamic_prompts=True),
    t5xxl: str = String(multiline=True, dynamic_prompts=True),
    guidance: float = Float(3.5, min=0.0, max=100.0, step=0.1),
    *,
    ctx: NodeContext,
) -> list[list[Any]]:
    """FLUX: a prompt for CLIP-L (pooled) and one for T5-XXL, with the distilled guidance strength."""
    if clip is None or getattr(clip, "family", None) != "flux":
        raise ValueError("clip: CLIPTextEncodeFlux needs a FLUX text encoder (DualCLIPLoader, type flux)")
    encoded = clip.encode(t5xxl, ctx.warn, per_encoder={"clip_l": clip_l, "t5xxl": t5xxl})
    return [[encoded.cond, {"pooled_output": encoded.pooled, "guidance": guidance}]]


def _set_guidance(conditioning: list[list[Any]], value: float | None) -> list[list[Any]]:
    return [[c[0], {**dict(c[1] or {}), "guidance": value}] for c in conditioning]


@node(category="advanced/conditioning/flux", outputs=["CONDITIONING"])
def FluxGuidance(
    conditioning: Any = Socket("CONDITIONING"),
    guidance: float = Float(3.5, min=0.0, max=100.0, step=0.1),
) -> list[list[Any]]:
    """Set the guidance strength a guidance-distilled model (FLUX.1-dev) is told."""
    return _set_guidance(conditioning, guidance)


@node(category="advanced/conditioning/flux", outputs=["CONDITIONING"])
def FluxDisableGuidance(conditioning: Any = Socket("CONDITIONING")) -> list[list[Any]]:
    """Leave out the guidance embedding entirely (for models trained without it)."""
    return _set_guidance(conditioning, None)


def _flow(model: Any, node_name: str) -> Any:
    from diffusion.flow import FlowModel

    if not isinstance(model, FlowModel):
        raise ValueError(f"model: {node_name} applies to flow-matching models (FLUX, SD3), not this one")
    return model


@node(category="advanced/model", outputs=["MODEL"])
def ModelSamplingFlux(
    model: Any = Socket("MODEL"),
    max_shift: float = Float(1.15, min=0.0, max=100.0, step=0.01),
    base_shift: float = Float(0.5, min=0.0, max=100.0, step=0.01),
    width: int = Int(1024, min=16, max=MAX_RESOLUTION, step=8),
    height: int = Int(1024, min=16, max=MAX_RESOLUTION, step=8),
) -> Any:
    """FLUX's resolution-dependent shift: base_shift at 256x256, max_shift at 1024x1024, linear in pixel count."""
    from diffusion.flow import flux_mu

    return _flow(model, "ModelSamplingFlux").with_shift("flux", flux_mu(width, height, max_shift, base_shift))


@node(category="advanced/model", outputs=["MODEL"])
def ModelSamplingSD3(
    model: Any = Socket("MODEL"),
    shift: float = Float(3.0, min=0.0, max=100.0, step=0.01),
) -> Any:
    """Shift the flow model's noise levels towards more noise (SD3's timestep shift)."""
    return _flow(model, "ModelSamplingSD3").with_shift("sd3", shift)


@node(category="advanced/model", outputs=["MODEL"])
def ModelSamplingAuraFlow(
    model: Any = Socket("MODEL"),
    shift: float = Float(1.73, min=0.0, max=100.0, step=0.01),
) -> Any:
    """The same timestep shift as ModelSamplingSD3, with AuraFlow's default."""
    return _flow(model, "ModelSamplingAuraFlow").with_shift("sd3", shift)


@node(category="latent/sd3", outputs=["LATENT"])
def EmptySD3LatentImage(
    width: int = Int(1024, min=16, max=MAX_RESOLUTION, step=16),
    height: int = Int(1024, min=16, max=MAX_RESOLUTION, step=16),
    batch_size: int = Int(1, min=1, max=4096),
) -> dict[str, Any]:
    """Zero 16-channel latents (FLUX, SD3) for an image of width x height pixels."""
    import torch

    return {"samples": torch.zeros([batch_size, 16, height // 8, width // 8])}
