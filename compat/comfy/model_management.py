"""`comfy.model_management` for node packs: the compute device, cache freeing and interrupt checks.

Interrupts act on the job of the node that calls them (through its context); outside a node,
`interrupt_current_processing` stops whatever job is running when the server has bound its interrupt hook.
torch is imported only when a function needs it.
"""

from __future__ import annotations

import sys
from typing import Any

from compat.host import bound, refuse
from engine.context import Interrupted, current_context

InterruptProcessingException = Interrupted


def get_torch_device() -> Any:
    import torch

    host = bound()
    if host is not None and host.cpu:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def intermediate_device() -> Any:
    import torch

    return torch.device("cpu")


def soft_empty_cache(force: bool = False) -> None:
    """Hand cached GPU memory back; does nothing (and imports nothing) when torch was never loaded."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def throw_exception_if_processing_interrupted() -> None:
    ctx = current_context()
    if ctx is not None:
        ctx.check_interrupt()


def processing_interrupted() -> bool:
    ctx = current_context()
    return ctx is not None and ctx.control.interrupted


def interrupt_current_processing(value: bool = True) -> None:
    ctx = current_context()
    if ctx is not None:
        if value:
            ctx.control.interrupt()
        else:
            ctx.control.interrupt_event.clear()
        return
    host = bound()
    if value and host is not None and host.interrupt is not None:
        host.interrupt()


def __getattr__(name: str) -> Any:
    refuse("comfy.model_management", name)
