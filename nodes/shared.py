"""Helpers the node modules share: the host's folders and model files, and the model manager.

Node modules import helpers from here (or from the helper modules files, imageio and resize), never from each other.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.context import NodeContext
from engine.environment import NodeEnvironment
from engine.events import Preview
from engine.folders import Folders

if TYPE_CHECKING:
    from diffusion.memory import ModelManager

MAX_RESOLUTION = 16384
"""The largest width, height or offset a node accepts (packs read it as `nodes.MAX_RESOLUTION`)."""

Latent = dict[str, Any]
"""A LATENT value: {"samples": tensor [B, C, H, W], optional "noise_mask", "batch_index"}."""

Conditioning = list[list[Any]]
"""A CONDITIONING value: [[tensor, {"pooled_output": ..., other keys}], ...]."""


def create_model_manager(force_cpu: bool, precision: str = "auto", lowvram: bool = False) -> ModelManager:
    """The environment's model store factory: imports torch, so it runs on the first model load, not at start."""
    from diffusion.memory import ModelManager

    return ModelManager.create(force_cpu=force_cpu, precision=precision, lowvram=lowvram)


def node_environment(
    folders: Folders,
    *,
    force_cpu: bool = False,
    preview_method: str = "auto",
    precision: str = "auto",
    lowvram: bool = False,
) -> NodeEnvironment:
    """The environment for Loom's built-in nodes: `folders`, and a model manager made on first use."""
    store = functools.partial(create_model_manager, precision=precision, lowvram=lowvram)
    return NodeEnvironment(folders, force_cpu, preview_method, model_store=store)


def folders_of(env: NodeEnvironment | None) -> Folders:
    """The host's folders; a clear error when the node runs without an environment."""
    if env is None:
        raise RuntimeError("this node needs the host's folders (env.folders) and no environment was given")
    return env.folders


def model_manager(env: NodeEnvironment | None) -> ModelManager:
    """The host's model manager; a CPU/GPU default one when the node runs without an environment."""
    manager: ModelManager = env.models if env is not None else create_model_manager(False)
    return manager


def model_file(env: NodeEnvironment | None, folder: str, name: str, input_name: str) -> Path:
    """The path of a listed model file; errors name the input and the folders searched."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{input_name}: no model file selected")
    folders = folders_of(env)
    path = folders.model_path(folder, name)
    if path is None:
        where = ", ".join(str(p) for p in folders.model_dirs(folder)) or "(no folders configured)"
        raise FileNotFoundError(f"{input_name}: {name!r} is not a file in models/{folder} ({where})")
    return path


def file_identity(env: NodeEnvironment | None, folder: str, name: Any) -> Any:
    """Size and mtime of a model file (its cache identity); None when it cannot be found (validation says so)."""
    path = env.folders.model_path(folder, name) if env is not None and isinstance(name, str) else None
    if path is None:
        return None
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def model_files(folder: str) -> Callable[[NodeEnvironment | None], list[str]]:
    """Combo choices: the files of a model folder (none while no environment is attached, e.g. at import)."""
    return lambda env: env.folders.list_models(folder) if env is not None else []


def file_input(folder: str, input_name: str) -> Callable[..., Any]:
    """A fingerprint hook keyed by the identity (path, size, mtime) of the model file an input names."""

    def fingerprint(env: NodeEnvironment | None = None, **inputs: Any) -> Any:
        return file_identity(env, folder, inputs.get(input_name))

    return fingerprint


def embedding_dirs(env: NodeEnvironment | None) -> list[Path]:
    """The folders textual inversions are looked up in (`embedding:NAME` in a prompt)."""
    return list(env.folders.model_dirs("embeddings")) if env is not None else []


def step_reporter(ctx: NodeContext, model: Any) -> Callable[[int, int, Any], None]:
    """A sampler's progress report for `ctx`: each step done, with a throttled JPEG preview of the x0 estimate."""
    from diffusion.preview import jpeg_preview
    from diffusion.sampling import PreviewThrottle

    throttle = PreviewThrottle()
    previews = ctx.env.previews if ctx.env is not None else True

    def report(done: int, total: int, denoised: Any) -> None:
        preview = None
        if previews and throttle.ready(final=False):
            data = jpeg_preview(denoised[0], model.latent_rgb_factors, model.latent_rgb_bias)
            preview = Preview("JPEG", data)
        ctx.progress(done, total, preview)

    return report


def with_values(conditioning: Conditioning, **values: Any) -> Conditioning:
    """A copy of every pair with `values` set in its dict."""
    return [[tensor, {**extras, **values}] for tensor, extras in conditioning]


@contextmanager
def naming_input(input_name: str) -> Iterator[None]:
    """A loader's errors about its file name the input: a ValueError (CheckpointError, ...) raised inside comes out
    as the same type with `input_name: ` in front."""
    try:
        yield
    except ValueError as exc:
        raise type(exc)(f"{input_name}: {exc}") from exc
