"""What a UNet call is for, for layers that act per step and per row (IP-Adapter's attention): the sampler sets
it around each call, so the UNet's own forward signature stays diffusers'."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class StepInfo:
    """One UNet call: how far through the schedule (0 = pure noise), which rows belong to the negative
    conditioning, the latent's (height, width) the call sees, and, when that is an area of a bigger latent, the
    whole latent's (height, width) and the area's (y0, y1, x0, x1), in latent cells."""

    percent: float
    negative: torch.Tensor  # bool [rows]
    size: tuple[int, int]
    crop: tuple[int, int, int, int, int, int] | None = None


_CURRENT: ContextVar[StepInfo | None] = ContextVar("loom_unet_step", default=None)


@contextmanager
def unet_step(info: StepInfo) -> Iterator[None]:
    token = _CURRENT.set(info)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_step() -> StepInfo | None:
    """The call being made, or None outside a sampler's UNet call."""
    return _CURRENT.get()
