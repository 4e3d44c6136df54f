"""The one place that imports the hub libraries, after switching them offline: nothing may reach the network."""

from __future__ import annotations

import os
from types import ModuleType

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


def go_offline() -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def diffusers() -> ModuleType:
    """`import diffusers` (about 5 s the first time), offline; call it when a model is first built, not earlier."""
    go_offline()
    import diffusers as module

    return module


def transformers() -> ModuleType:
    go_offline()
    import transformers as module

    return module


def accelerate() -> ModuleType:
    go_offline()
    import accelerate as module

    return module
