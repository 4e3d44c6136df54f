"""Every sampler's path on a U-Net-style (variance-exploding) toy, reduced to a few sums per step.

`data/unet_trajectories.json` holds the sums recorded before the samplers learned per-model noise scaling (the
code then was bit-identical to that which recorded them); tests/diffusion/test_flow_samplers.py recomputes them to
show the EPS/V path stayed the same. Sums rather than a digest of the bytes: another CPU's vector math may move the
last bits of exp or log, which a change to a formula never stays within. The toy is a
guided Gaussian denoiser (the positive and negative estimates of N(MU, C²) and N(-MU, C²) data mixed at cfg 2) on
SD 1.x's schedule, so CFG++ samplers have an unguided estimate to read."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from diffusion.noise import BrownianTreeNoise, GaussianNoise, NoiseSource
from diffusion.samplers import SAMPLERS
from diffusion.schedulers import DiscreteSchedule, sigmas_for

SCHEDULE = DiscreteSchedule.scaled_linear(0.00085, 0.012, 1000)
MU, C, CFG = 0.5, 0.6, 2.0
SHAPE = (2, 2, 3, 3)
# Option sets beyond each sampler's defaults: the ancestral and SDE ones at a partial eta too.
VARIANTS: dict[str, dict[str, Any]] = {"default": {}, "eta_half": {"eta": 0.5}}


class GuidedToy:
    """CFG over two Gaussian denoisers, keeping the unguided estimate as the samplers' guided models do."""

    last_uncond: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s2 = sigma.reshape(-1, 1, 1, 1) ** 2
        cond = MU + C**2 / (C**2 + s2) * (x - MU)
        uncond = -MU + C**2 / (C**2 + s2) * (x + MU)
        self.last_uncond = uncond
        return uncond + CFG * (cond - uncond)


def sums(t: torch.Tensor) -> list[float]:
    """Sum, sum of squares and a position-weighted sum: a change in any element moves one of them."""
    v = t.double().flatten()
    return [float(v.sum()), float((v * v).sum()), float((v * torch.arange(1, v.numel() + 1)).sum())]


def trajectory(name: str, options: dict[str, Any]) -> list[float]:
    """The sums of the latent at every step, each x0 estimate and the output of `name` run with `options`."""
    sampler = SAMPLERS[name]
    sigmas = sigmas_for(SCHEDULE, "karras", 6)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0)) * sigmas[0]
    noise: NoiseSource = (
        BrownianTreeNoise.for_sigmas(x, sigmas, 5)
        if sampler.noise in ("tree", "device_tree")
        else GaussianNoise(SHAPE, 5)
    )
    seen: list[float] = []

    def record(_i: int, x_now: torch.Tensor, denoised: torch.Tensor) -> None:
        seen.extend(sums(x_now) + sums(denoised))

    merged = dict(options)
    if sampler.schedule_defaults is not None:
        merged = sampler.schedule_defaults(SCHEDULE) | merged
    out = sampler(GuidedToy(), x, sigmas, noise, record, **merged)
    return seen + sums(out)


def applies(name: str, variant: str) -> bool:
    """Whether a variant's options are ones `name` takes."""
    params = inspect.signature(SAMPLERS[name].fn).parameters
    return all(k in params for k in VARIANTS[variant])


def all_trajectories() -> dict[str, list[float]]:
    return {
        f"{name}/{variant}": trajectory(name, VARIANTS[variant])
        for name in SAMPLERS
        for variant in VARIANTS
        if applies(name, variant)
    }


if __name__ == "__main__":
    import json
    from pathlib import Path

    path = Path(__file__).parent / "data" / "unet_trajectories.json"
    path.write_text(json.dumps(all_trajectories(), sort_keys=True) + "\n")
    print(f"wrote {path}")
