"""One small sampling run (euler, 8x8 latent, fixed seed) for tests that compare a model's outputs."""

from __future__ import annotations

from typing import Any

import torch

from diffusion.sampling import SampleRequest, sample


def sample_request(model: Any, positive: list, negative: list, **overrides: Any) -> SampleRequest:
    """A KSampler request for `model` on `positive`/`negative`: 2 euler steps at cfg 5 with seed 3 on an empty
    8x8 latent, unless overridden."""
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
    return SampleRequest(**(request | overrides))


def sample_latent(model: Any, positive: list, negative: list, **overrides: Any) -> torch.Tensor:
    """The sampled latent of `sample_request(model, positive, negative, **overrides)`."""
    return sample(sample_request(model, positive, negative, **overrides))["samples"]
