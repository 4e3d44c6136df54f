"""`comfy_execution.graph` for node packs: `ExecutionBlocker`, the engine's own class (engine.blocker)."""

from typing import Any

from compat.host import refuse
from engine.blocker import ExecutionBlocker

__all__ = ["ExecutionBlocker"]


def __getattr__(name: str) -> Any:
    refuse("comfy_execution.graph", name)
