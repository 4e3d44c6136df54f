"""Model loaders: checkpoints (MODEL, CLIP, VAE, with or without an LDM config), standalone VAEs, CLIP skip, and
hypernetworks.

A loaded model is a cache entry like any other output: the loaders' fingerprint is the file's size and mtime,
so two workflows naming the same unchanged file share one copy, and a replaced file loads again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.context import NodeContext
from engine.environment import NodeEnvironment
from engine.native import Combo, Float, Int, Out, Socket, node
from nodes.shared import embedding_dirs, file_identity, file_input, model_file, model_files, model_manager


def _checkpoint_identity(ckpt_name: str, env: NodeEnvironment | None = None) -> Any:
    return file_identity(env, "checkpoints", ckpt_name)


def _vae_identity(vae_name: str, env: NodeEnvironment | None = None) -> Any:
    return file_identity(env, "vae", vae_name)


def _raise_named(input_name: str, exc: Exception) -> None:
    from diffusion.checkpoint import CheckpointError

    if isinstance(exc, CheckpointError):
        raise CheckpointError(f"{input_name}: {exc}") from exc
    raise exc


@node(
    category="loaders",
    outputs=[
        Out("MODEL", "MODEL", tooltip="The denoising UNet."),
        Out("CLIP", "CLIP", tooltip="The text encoder(s)."),
        Out("VAE", "VAE", tooltip="The image <-> latent autoencoder."),
    ],
    display_name="Load Checkpoint",
    fingerprint=_checkpoint_identity,
)
def CheckpointLoaderSimple(
    ckpt_name: str = Combo(model_files("checkpoints"), tooltip="A checkpoint file in models/checkpoints."),
    *,
    ctx: NodeContext,
) -> tuple[Any, Any, Any]:
    """Load a Stable Diffusion checkpoint (SD 1.x, SD 2.x or SDXL, told apart by its tensors alone)."""
    return _load_checkpoint(ckpt_name, ctx)


def _load_checkpoint(ckpt_name: str, ctx: NodeContext) -> tuple[Any, Any, Any]:
    from diffusion.loader import load_checkpoint

    path = model_file(ctx.env, "checkpoints", ckpt_name, "ckpt_name")
    try:
        ckpt = load_checkpoint(path, model_manager(ctx.env), embedding_dirs(ctx.env))
    except Exception as exc:
        _raise_named("ckpt_name", exc)
    missing = [n for n, v in (("MODEL", ckpt.model), ("CLIP", ckpt.clip), ("VAE", ckpt.vae)) if v is None]
    if missing:
        ctx.warn(f"{Path(path).name} holds no {', '.join(missing)}; those outputs are empty")
    return ckpt.model, ckpt.clip, ckpt.vae


CONFIG_EXTENSIONS = (".yaml", ".yml")


def _config_choices(env: NodeEnvironment | None) -> list[str]:
    """The files of models/configs and the stock config names the reference ships, sorted."""
    from diffusion.ldm_config import STOCK_CONFIGS

    files = env.folders.list_models("configs", CONFIG_EXTENSIONS) if env is not None else []
    return sorted({*files, *STOCK_CONFIGS})


def _checkpoint_with_config_identity(config_name: str, ckpt_name: str, env: NodeEnvironment | None = None) -> Any:
    return [file_identity(env, "configs", config_name), file_identity(env, "checkpoints", ckpt_name)]


@node(
    category="advanced/loaders",
    outputs=["MODEL", "CLIP", "VAE"],
    display_name="Load Checkpoint With Config (DEPRECATED)",
    deprecated=True,
    fingerprint=_checkpoint_with_config_identity,
)
def CheckpointLoader(
    config_name: str = Combo(_config_choices),
    ckpt_name: str = Combo(model_files("checkpoints")),
    *,
    ctx: NodeContext,
) -> tuple[Any, Any, Any]:
    """CheckpointLoaderSimple with a latent-diffusion YAML config: the tensors say the architecture, the config
    the prediction target (v-prediction configs) and the text encoder layer ("clip skip 2" configs)."""
    from dataclasses import replace

    from diffusion.ldm_config import ConfigError, read_ldm_config

    folders = ctx.env.folders if ctx.env is not None else None
    path = folders.model_path("configs", config_name) if folders is not None else None
    try:
        config = read_ldm_config(config_name, path)
    except (ConfigError, OSError) as exc:
        raise ValueError(f"config_name: {exc}") from exc
    model, clip, vae = _load_checkpoint(ckpt_name, ctx)
    if model is not None and model.prediction in ("eps", "v") and model.prediction != config.prediction:
        model = replace(model, prediction=config.prediction)
    if clip is not None and config.clip_layer is not None:
        clip = clip.with_layer(config.clip_layer)
    return model, clip, vae


@node(category="loaders", outputs=["VAE"], display_name="Load VAE", fingerprint=_vae_identity)
def VAELoader(
    vae_name: str = Combo(model_files("vae"), tooltip="A VAE file in models/vae."),
    *,
    ctx: NodeContext,
) -> Any:
    """Load a standalone VAE (LDM layout), e.g. to replace a checkpoint's own."""
    from diffusion.loader import load_vae_file

    path = model_file(ctx.env, "vae", vae_name, "vae_name")
    try:
        return load_vae_file(path, model_manager(ctx.env))
    except Exception as exc:
        _raise_named("vae_name", exc)


@node(category="conditioning", outputs=["CLIP"], display_name="CLIP Set Last Layer")
def CLIPSetLastLayer(
    clip: Any = Socket("CLIP"),
    stop_at_clip_layer: int = Int(-1, min=-24, max=-1, step=1),
) -> Any:
    """Use the hidden states of an earlier CLIP layer ("clip skip"): -1 is the last layer, -2 the one before."""
    return clip.with_layer(stop_at_clip_layer)


def _diffusers_roots(env: NodeEnvironment | None) -> list[Path]:
    if env is None:
        return []
    folders = env.folders
    roots = list(folders.model_dirs("diffusers"))
    # models/diffusers next to each checkpoints folder, as the ecosystem lays it out
    roots += [d.parent / "diffusers" for d in folders.model_dirs("checkpoints")]
    roots += folders.model_dirs("checkpoints")
    return list(dict.fromkeys(roots))


def _diffusers_choices(env: NodeEnvironment | None) -> list[str]:
    """Pipeline folders (holding model_index.json) directly under models/diffusers or models/checkpoints."""
    names: dict[str, None] = {}
    for root in _diffusers_roots(env):
        if root.is_dir():
            for entry in sorted(root.iterdir()):
                if (entry / "model_index.json").is_file():
                    names.setdefault(entry.name, None)
    return list(names)


def _diffusers_path(env: NodeEnvironment | None, name: str) -> Path:
    from engine.folders import UnsafePath, confined

    for root in _diffusers_roots(env):
        try:
            path = confined(root, name)
        except UnsafePath as exc:
            raise ValueError(f"model_path: {exc}") from exc
        if (path / "model_index.json").is_file():
            return path
    raise FileNotFoundError(f"model_path: {name!r} is not a diffusers pipeline folder in models/diffusers")


def _diffusers_identity(model_path: str, env: NodeEnvironment | None = None) -> Any:
    try:
        path = _diffusers_path(env, model_path)
    except (FileNotFoundError, ValueError):
        return None
    return [str(path), *[(p.name, p.stat().st_mtime_ns) for p in sorted(path.glob("*/*")) if p.is_file()]]


@node(
    category="advanced/loaders/deprecated",
    outputs=["MODEL", "CLIP", "VAE"],
    fingerprint=_diffusers_identity,
)
def DiffusersLoader(
    model_path: str = Combo(
        _diffusers_choices,
        tooltip="A diffusers pipeline folder: SD 1.x/2.x/SDXL (unet/, vae/, "
        "text_encoder/) or FLUX.1/SD3 (transformer/, vae/, text_encoder*/, tokenizer*/).",
    ),
    *,
    ctx: NodeContext,
) -> tuple[Any, Any, Any]:
    """Load a diffusers-format pipeline folder from local files only (SD 1.x/2.x/SDXL, FLUX.1, SD3/SD3.5)."""
    from diffusion.loader import load_diffusers_folder

    path = _diffusers_path(ctx.env, model_path)
    try:
        ckpt = load_diffusers_folder(path, model_manager(ctx.env), embedding_dirs(ctx.env))
    except Exception as exc:
        _raise_named("model_path", exc)
    return ckpt.model, ckpt.clip, ckpt.vae


@node(category="loaders", outputs=["MODEL"], fingerprint=file_input("hypernetworks", "hypernetwork_name"))
def HypernetworkLoader(
    model: Any = Socket("MODEL"),
    hypernetwork_name: str = Combo(model_files("hypernetworks")),
    strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01),
    *,
    ctx: NodeContext,
) -> Any:
    """A hypernetwork from models/hypernetworks on the model's attention layers (key and value inputs get
    `x + strength * mlp(x)` wherever the file has MLPs for that width); the loaded model is shared, not changed."""
    from diffusion.hypernetwork import HypernetworkError, HypernetworkPatch, load_hypernetwork

    if not hasattr(model, "with_unet_patch"):
        raise ValueError("model: hypernetworks patch the attention of U-Net models (SD 1.x, SD 2.x, SDXL)")
    path = model_file(ctx.env, "hypernetworks", hypernetwork_name, "hypernetwork_name")
    try:
        nets = load_hypernetwork(path)
    except HypernetworkError as exc:
        raise ValueError(f"hypernetwork_name: {exc}") from exc
    return model.with_unet_patch(HypernetworkPatch(nets, strength))
