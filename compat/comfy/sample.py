"""`comfy.sample` for node packs: noise and the sampling call, run by Loom's sampler (diffusion.sampling).

`prepare_noise(latent, seed, batch_inds)` is Loom's seeded noise. `sample(...)` runs Loom's KSampler request: Loom
draws the initial noise from `seed` itself (the same noise `prepare_noise` gives for that seed), so a call
without `seed=` is refused rather than run with other noise than the pack's. The step callback gets
`(step, x0, x, total_steps)` with x0 the denoised estimate and x None (Loom reports only the estimate).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np  # noqa: F401 - packs import it from here (`from comfy.sample import np`), as the reference has it

from compat.surface import complete, resolve
from engine.context import current_context


def prepare_noise(latent_image: Any, seed: int, noise_inds: Any = None) -> Any:
    from diffusion.sampling import prepare_noise as loom_noise

    return loom_noise(latent_image, seed, noise_inds)


def fix_empty_latent_channels(model: Any, latent_image: Any) -> Any:
    """An all-zero latent with the wrong channel count becomes zeros with the model's channels."""
    import torch

    channels = int(getattr(_loom(model), "latent_channels", latent_image.shape[1]))
    if latent_image.shape[1] != channels and not torch.count_nonzero(latent_image):
        return latent_image.new_zeros((latent_image.shape[0], channels, *latent_image.shape[2:]))
    return latent_image


def sample(
    model: Any,
    noise: Any,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: Any,
    negative: Any,
    latent_image: Any,
    denoise: float = 1.0,
    disable_noise: bool = False,
    start_step: int | None = None,
    last_step: int | None = None,
    force_full_denoise: bool = False,
    noise_mask: Any = None,
    sigmas: Any = None,
    callback: Callable[..., Any] | None = None,
    disable_pbar: bool = False,
    seed: int | None = None,
) -> Any:
    """The denoised latent samples (a tensor), like the reference's call."""
    from diffusion.sampling import SampleRequest
    from diffusion.sampling import sample as loom_sample

    if sigmas is not None:
        raise ValueError("comfy.sample.sample: custom sigmas are not supported by Loom's sampler; pass a scheduler")
    if seed is None and not disable_noise:
        raise ValueError("comfy.sample.sample: pass seed= (Loom draws the initial noise from the seed)")
    latent: dict[str, Any] = {"samples": latent_image}
    if noise_mask is not None:
        latent["noise_mask"] = noise_mask
    request = SampleRequest(
        model=_loom(model),
        seed=int(seed or 0),
        steps=steps,
        cfg=cfg,
        sampler=sampler_name,
        scheduler=scheduler,
        positive=positive,
        negative=negative,
        latent=latent,
        denoise=denoise,
        add_noise=not disable_noise,
        start_step=start_step,
        last_step=last_step,
        force_full_denoise=force_full_denoise,
    )
    ctx = current_context()

    def report(done: int, total: int, denoised: Any) -> None:
        if callback is not None:
            callback(done - 1, denoised, None, total)
        elif ctx is not None:
            ctx.progress(done, total)

    return loom_sample(request, report, ctx.warn if ctx is not None else None)["samples"]


def _loom(model: Any) -> Any:
    """Loom's model behind a ModelPatcher facade, or the model itself."""
    unwrap = getattr(type(model), "loom_model", None)
    return unwrap(model) if callable(unwrap) else model


complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
