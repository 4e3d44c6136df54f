"""FLUX and SD3 nodes: the standalone diffusion-model and text-encoder loaders, their prompt encoders, guidance
(FLUX's distilled guidance, skip-layer guidance), the flow models' sampling shift, and the 16-channel empty latent."""

from __future__ import annotations

from typing import Any

from engine.context import NodeContext
from engine.environment import NodeEnvironment
from engine.native import Combo, Float, Int, Out, Socket, String, node
from nodes.shared import embedding_dirs, file_identity, model_file, model_files, model_manager

MAX_RESOLUTION = 16384
WEIGHT_DTYPES = ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]
DUAL_CLIP_TYPES = ["sdxl", "sd3", "flux", "hunyuan_video", "hidream"]
CLIP_TYPES = ["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv", "pixart", "cosmos",
              "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image"]  # fmt: skip
DEVICES = ["default", "cpu"]
LOOM_FAMILIES = {"flux": "flux", "sd3": "sd3"}


def _unet_identity(unet_name: str, weight_dtype: str = "default", env: NodeEnvironment | None = None) -> Any:
    return [file_identity(env, "diffusion_models", unet_name), weight_dtype]


def _clips_identity(env: NodeEnvironment | None = None, **inputs: Any) -> Any:
    names = [v for k, v in sorted(inputs.items()) if k.startswith("clip_name")]
    return [[file_identity(env, "text_encoders", n) for n in names], inputs.get("type"), inputs.get("device")]


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
    """A standalone FLUX or SD3 transformer from models/diffusion_models (reference or diffusers layout, any float
    or fp8 weights); fp8 weight_dtype keeps linear weights in fp8 and upcasts them layer by layer."""
    from diffusion.dit_loader import load_diffusion_model

    path = model_file(ctx.env, "diffusion_models", unet_name, "unet_name")
    try:
        return load_diffusion_model(path, model_manager(ctx.env), weight_dtype)
    except Exception as exc:
        _raise_named("unet_name", exc)


def _text_manager(env: NodeEnvironment | None, device: str) -> Any:
    """The loaders' device option: "cpu" keeps the text encoders on the CPU whatever the compute device."""
    manager = model_manager(env)
    if device == "cpu" and manager.device.type != "cpu":
        from diffusion.memory import ModelManager

        return ModelManager.create(force_cpu=True)
    return manager


def _load_clips(ctx: NodeContext, names: list[tuple[str, str]], family: str, device: str = "default") -> Any:
    from diffusion.dit_text import load_text_encoders

    paths = [model_file(ctx.env, "text_encoders", name, input_name) for input_name, name in names]
    try:
        return load_text_encoders(paths, family, _text_manager(ctx.env, device), embedding_dirs(ctx.env))
    except Exception as exc:
        _raise_named(names[0][0], exc)


@node(category="advanced/loaders", outputs=[Out("CLIP")], display_name="Load CLIP", fingerprint=_clips_identity)
def CLIPLoader(
    clip_name: str = Combo(model_files("text_encoders")),
    type: str = Combo(CLIP_TYPES),
    device: str = Combo(DEVICES, "default", optional=True),
    *,
    ctx: NodeContext,
) -> Any:
    """One text encoder as a CLIP: for sd3 any of CLIP-L, CLIP-G or T5-XXL (the others count as zeros); for
    stable_diffusion a CLIP-L for SD 1.x models."""
    if type != "stable_diffusion":
        return _load_clips(ctx, [("clip_name", clip_name)], _family(type, "CLIPLoader"), device)
    from diffusion.checkpoint import CheckpointError
    from diffusion.dit_text import read_text_file

    path = model_file(ctx.env, "text_encoders", clip_name, "clip_name")
    try:
        clips, _t5 = read_text_file(path, "sd1", _text_manager(ctx.env, device), embedding_dirs(ctx.env))
    except Exception as exc:
        _raise_named("clip_name", exc)
    if "clip_l" not in clips:
        raise CheckpointError(f"clip_name: {clip_name} holds no CLIP-L text encoder, which stable_diffusion needs")
    return clips["clip_l"]


@node(category="advanced/loaders", outputs=[Out("CLIP")], display_name="DualCLIPLoader", fingerprint=_clips_identity)
def DualCLIPLoader(
    clip_name1: str = Combo(model_files("text_encoders")),
    clip_name2: str = Combo(model_files("text_encoders")),
    type: str = Combo(DUAL_CLIP_TYPES),
    device: str = Combo(DEVICES, "default", optional=True),
    *,
    ctx: NodeContext,
) -> Any:
    """Two text encoders as one CLIP: for flux, CLIP-L and T5-XXL; for sd3, two of CLIP-L, CLIP-G and T5-XXL (the
    third counts as zeros). In either order."""
    family = _family(type, "DualCLIPLoader")
    return _load_clips(ctx, [("clip_name1", clip_name1), ("clip_name2", clip_name2)], family, device)


@node(category="advanced/loaders", outputs=[Out("CLIP")], display_name="TripleCLIPLoader", fingerprint=_clips_identity)
def TripleCLIPLoader(
    clip_name1: str = Combo(model_files("text_encoders")),
    clip_name2: str = Combo(model_files("text_encoders")),
    clip_name3: str = Combo(model_files("text_encoders")),
    *,
    ctx: NodeContext,
) -> Any:
    """SD3's three text encoders as one CLIP: CLIP-L, CLIP-G and T5-XXL, in any order."""
    names = [("clip_name1", clip_name1), ("clip_name2", clip_name2), ("clip_name3", clip_name3)]
    return _load_clips(ctx, names, "sd3")


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


@node(category="advanced/conditioning", outputs=["CONDITIONING"])
def CLIPTextEncodeSD3(
    clip: Any = Socket("CLIP"),
    clip_l: str = String(multiline=True, dynamic_prompts=True),
    clip_g: str = String(multiline=True, dynamic_prompts=True),
    t5xxl: str = String(multiline=True, dynamic_prompts=True),
    empty_padding: str = Combo(["none", "empty_prompt"]),
    *,
    ctx: NodeContext,
) -> list[list[Any]]:
    """SD3: a prompt per text encoder. With empty_padding "none" an empty prompt is left out rather than encoded
    (T5 then sees only its end token; the CLIPs' part goes when both their prompts are empty)."""
    if clip is None or getattr(clip, "family", None) != "sd3":
        raise ValueError("clip: CLIPTextEncodeSD3 needs SD3 text encoders (TripleCLIPLoader, or a CLIP loader of "
                         "type sd3)")  # fmt: skip
    texts = {"clip_l": clip_l, "clip_g": clip_g, "t5xxl": t5xxl}
    left_out = frozenset(n for n, t in texts.items() if not t) if empty_padding == "none" else frozenset()
    encoded = clip.encode(clip_g, ctx.warn, per_encoder=texts, left_out=left_out)
    return [[encoded.cond, {"pooled_output": encoded.pooled}]]


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


def _skip_layer_guidance(
    ctx: NodeContext,
    model: Any,
    node_name: str,
    layers: tuple[str, str],
    scale: float,
    start: float,
    end: float,
    rescale: float,
) -> Any:
    """Parse the block lists (any integers in the text; `layers`: joint blocks, single blocks) and add the guidance
    unless there is nothing to skip. Blocks past the model's last are skipped nothing, as in the reference."""
    import re

    from diffusion.post_guidance import SkipLayerGuidance
    from diffusion.unet_patches import SkipBlocks

    flow = _flow(model, node_name)
    double, single = (tuple(int(i) for i in re.findall(r"\d+", text)) for text in layers)
    if not double and not single:
        return model
    for kind, wanted, attr in (
        ("joint", double, "transformer_blocks"),
        ("single", single, "single_transformer_blocks"),
    ):
        count = len(getattr(flow.unet, attr, ()))
        if count and any(i >= count for i in wanted):
            ctx.warn(f"{node_name}: the model has {count} {kind} blocks (0-{count - 1}); "
                     f"{', '.join(str(i) for i in wanted if i >= count)} skip nothing")  # fmt: skip
    sigma_start, sigma_end = flow.schedule.percent_to_sigma(start), flow.schedule.percent_to_sigma(end)
    return flow.with_post_guidance(
        SkipLayerGuidance(SkipBlocks(double, single), scale, sigma_start, sigma_end, rescale)
    )


@node(category="advanced/guidance", outputs=["MODEL"], experimental=True)
def SkipLayerGuidanceSD3(
    model: Any = Socket("MODEL"),
    layers: str = String("7, 8, 9", multiline=False),
    scale: float = Float(3.0, min=0.0, max=10.0, step=0.1),
    start_percent: float = Float(0.01, min=0.0, max=1.0, step=0.001),
    end_percent: float = Float(0.15, min=0.0, max=1.0, step=0.001),
    *,
    ctx: NodeContext,
) -> Any:
    """Skip-layer guidance: between start_percent and end_percent of sampling, predict the prompt again with
    these joint blocks skipped and steer away from that weaker prediction by `scale` (sharper structure)."""
    return _skip_layer_guidance(
        ctx, model, "SkipLayerGuidanceSD3", (layers, ""), scale, start_percent, end_percent, 0.0
    )


@node(category="advanced/guidance", outputs=["MODEL"], experimental=True)
def SkipLayerGuidanceDiT(
    model: Any = Socket("MODEL"),
    double_layers: str = String("7, 8, 9", multiline=False),
    single_layers: str = String("7, 8, 9", multiline=False),
    scale: float = Float(3.0, min=0.0, max=10.0, step=0.1),
    start_percent: float = Float(0.01, min=0.0, max=1.0, step=0.001),
    end_percent: float = Float(0.15, min=0.0, max=1.0, step=0.001),
    rescaling_scale: float = Float(0.0, min=0.0, max=10.0, step=0.01),
    *,
    ctx: NodeContext,
) -> Any:
    """Skip-layer guidance for any DiT: joint (double) blocks and FLUX's single blocks; rescaling_scale pulls the
    result's spread back toward the prompt's own prediction."""
    layers = (double_layers, single_layers)
    return _skip_layer_guidance(ctx, model, "SkipLayerGuidanceDiT", layers, scale, start_percent, end_percent,
                                rescaling_scale)  # fmt: skip
