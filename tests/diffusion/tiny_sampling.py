"""One small sampling run (euler, 8x8 latent, fixed seed) for tests that compare a model's outputs."""

from __future__ import annotations

from typing import Any

import torch

from diffusion.sampling import SampleRequest, sample


def sample_latent(model: Any, positive: list, negative: list, **overrides: Any) -> torch.Tensor:
    """The sampled latent of `model` on `positive`/`negative` (2 steps at cfg 5 unless overridden)."""
    request = dict(
        model=model,
        seed=3,
        steps=2,
        cfg=5.0,
        sampler="euler",
        scheduler="normal",
        positive=positive,
        negative=negative,
        latent={"samples": torch.zeros(1, 4, 8, 8)},
    )
    return sample(SampleRequest(**(request | overrides)))["samples"]
