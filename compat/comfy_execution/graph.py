"""`comfy_execution.graph` for node packs: `ExecutionBlocker`, the engine's own class (engine.blocker)."""

from typing import Any

from compat.host import refuse


def __getattr__(name: str) -> Any:
    if name == "ExecutionBlocker":
        from engine.blocker import ExecutionBlocker

        return ExecutionBlocker
    refuse("comfy_execution.graph", name)
