"""Handing memory back once cached outputs and models are dropped (POST /free).

Dropping the cache's references is not enough: models sit in reference cycles (modules, hooks, tracebacks) that only
the cycle collector frees, the CUDA allocator keeps freed blocks for reuse, and the C heap keeps freed pages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys


def reclaim() -> None:
    gc.collect()
    torch = sys.modules.get("torch")  # never imported here: a server that loaded no model has nothing to give back
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    _trim_heap()


def _trim_heap() -> None:
    """glibc's malloc_trim: return the free pages of the C heap to the system (elsewhere nothing to do)."""
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return
    trim(0)
