"""`comfy.sd` for node packs: checkpoint loading and LoRA application, answered by Loom's model layer.

`load_checkpoint_guess_config` returns Loom's own MODEL/CLIP/VAE objects (the ones Loom's nodes pass around), so
a pack's loader node feeds Loom's samplers directly; `load_lora_for_models` patches them like LoraLoader does.
`VAE` and `CLIP` are names packs test with isinstance: Loom's objects pass; making one fails (Loom builds them
from files only). The other loaders exist by name only (compat.surface).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from compat import placeholder
from compat.host import bound
from compat.surface import complete, resolve
from diffusion.text_encoder import TextEncoder
from diffusion.vae import VAE as LoomVAE
from engine.context import current_context

VAE = placeholder.klass("comfy.sd.VAE", like=(LoomVAE,))
CLIP = placeholder.klass("comfy.sd.CLIP", like=(TextEncoder,))


def _env() -> Any:
    host = bound()
    return host.env if host is not None else None


def load_checkpoint_guess_config(
    ckpt_path: str | Path,
    output_vae: bool = True,
    output_clip: bool = True,
    output_clipvision: bool = False,
    embedding_directory: str | Sequence[str] | None = None,
    output_model: bool = True,
    **options: Any,
) -> tuple[Any, Any, Any, None]:
    """(model, clip, vae, clip_vision) from a single-file checkpoint; clip_vision is always None (Loom loads none)."""
    from diffusion.loader import load_checkpoint
    from nodes.shared import embedding_dirs, model_manager

    env = _env()
    if embedding_directory is None:
        embeddings = embedding_dirs(env) if env is not None else []
    else:
        listed = [embedding_directory] if isinstance(embedding_directory, str) else list(embedding_directory)
        embeddings = [Path(p) for p in listed]
    ckpt = load_checkpoint(Path(ckpt_path), model_manager(env), embeddings, output_model, output_clip, output_vae)
    return ckpt.model, ckpt.clip, ckpt.vae, None


def load_lora_for_models(
    model: Any, clip: Any, lora: Mapping[str, Any], strength_model: float, strength_clip: float
) -> tuple[Any, Any]:
    """`model` and `clip` with a LoRA's tensors (as `comfy.utils.load_torch_file` returned them) applied."""
    from nodes.lora import apply_lora_tensors

    ctx = current_context()
    warn = ctx.warn if ctx is not None else (lambda message: None)
    if model is None:
        raise ValueError("load_lora_for_models: no model to apply the LoRA to")
    return apply_lora_tensors(model, clip, lora, "the LoRA", strength_model, strength_clip, warn)


complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
