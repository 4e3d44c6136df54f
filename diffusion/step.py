"""What a UNet call is for, for layers that act per step and per row (IP-Adapter's attention): the sampler sets
it around each call, so the UNet's own forward signature stays diffusers'."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)
Warn = Callable[[str], None]


@dataclass(frozen=True)
class StepInfo:
    """One UNet call: how far through the schedule (0 = pure noise), which rows belong to the negative
    conditioning, the latent's (height, width) the call sees, and, when that is an area of a bigger latent, the
    whole latent's (height, width) and the area's (y0, y1, x0, x1), in latent cells; `warn` tells the node that
    runs the sampler something it should know (`step_warning`)."""

    percent: float
    negative: torch.Tensor  # bool [rows]
    size: tuple[int, int]
    crop: tuple[int, int, int, int, int, int] | None = None
    warn: Warn | None = None


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


def step_warning(message: str) -> None:
    """Warn the node running the current UNet call (its sampler's `warn`), or the log outside one."""
    step = current_step()
    (step.warn if step is not None and step.warn is not None else log.warning)(message)


def once_each(warn: Warn | None) -> Warn:
    """`warn` (the log when None) saying each distinct message once: a sampler's warnings come once per run, not
    once per step."""
    said: set[str] = set()

    def say(message: str) -> None:
        if message not in said:
            said.add(message)
            (warn or log.warning)(message)

    return say
