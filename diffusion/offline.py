"""The one place that imports the hub libraries, after switching them offline: nothing may reach the network.

Importing them is the largest part of a cold first job (diffusers, then its model classes, which pull in every
diffusers transformer model and torch._dynamo: seconds), so a server warms them in a background thread at start.
Every accessor here waits for that thread instead of importing the same packages from a second thread at once:
two threads importing one package's mutually dependent modules can each see the other's half-initialised."""

from __future__ import annotations

import importlib
import importlib.abc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType

log = logging.getLogger(__name__)

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DIFFUSERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
}

# What a first checkpoint job imports, in order (torch first: a job needing it meanwhile waits on this import rather
# than start a second), with the classes it builds: the attribute access is what imports their modules (lazy packages).
WARM_UP: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("torch", ()),
    ("accelerate", ()),
    ("diffusers", ("UNet2DConditionModel", "AutoencoderKL", "ControlNetModel")),
    ("transformers", ("CLIPTextConfig", "CLIPTextModel", "CLIPTextModelWithProjection", "CLIPTokenizer")),
)

# The longest the warm-up waits for a quiet moment before each module it imports: it holds the GIL while importing,
# which would make the server's answers meanwhile ten times slower, but it must still finish during a long request.
WARM_UP_MAX_WAIT_S = 0.25

_warming: threading.Thread | None = None
_warming_lock = threading.Lock()
_needed = threading.Event()


def go_offline() -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def warm_up_in_background(wait_quiet: Callable[[float], object] | None = None) -> threading.Thread:
    """Start importing the hub libraries and the model classes a first job needs, in a daemon thread (once per
    process; later calls return the same thread). Before each module, the thread calls `wait_quiet(seconds)` (the
    server: wait, at most that long, until it answers no request) unless a job already waits for the imports. A
    failure is left for the job that needs the import to raise."""
    global _warming
    with _warming_lock:
        if _warming is None:
            _warming = threading.Thread(target=_warm_up, args=(wait_quiet,), name="loom-warm-imports", daemon=True)
            _warming.start()
        return _warming


class _WaitBeforeEachImport(importlib.abc.MetaPathFinder):
    """First on sys.meta_path during the warm-up: on the warm-up thread, waits for a quiet moment; finds nothing."""

    def __init__(self, wait_quiet: Callable[[float], object]) -> None:
        self.wait_quiet = wait_quiet

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if threading.current_thread() is _warming and not _needed.is_set():
            self.wait_quiet(WARM_UP_MAX_WAIT_S)


def _warm_up(wait_quiet: Callable[[float], object] | None) -> None:
    started = time.perf_counter()
    finder = _WaitBeforeEachImport(wait_quiet) if wait_quiet is not None else None
    if finder is not None:
        sys.meta_path.insert(0, finder)
    try:
        go_offline()
        for package, classes in WARM_UP:
            module = importlib.import_module(package)
            for name in classes:
                getattr(module, name)
        log.info("model layer imported in the background in %.1f s", time.perf_counter() - started)
    except Exception:  # the job importing it raises the same error where it can be reported
        log.warning("warming the model-layer imports failed; the first job will import them", exc_info=True)
    finally:
        if finder is not None:
            sys.meta_path.remove(finder)


def _await_warm_up() -> None:
    thread = _warming
    if thread is not None and thread is not threading.current_thread():
        _needed.set()  # no more waiting for quiet moments: a job is waiting now
        thread.join()


def diffusers() -> ModuleType:
    """`import diffusers` (seconds the first time), offline; call it when a model is first built, not earlier."""
    _await_warm_up()
    go_offline()
    import diffusers as module

    return module


def transformers() -> ModuleType:
    _await_warm_up()
    go_offline()
    import transformers as module

    return module


def accelerate() -> ModuleType:
    _await_warm_up()
    go_offline()
    import accelerate as module

    return module
