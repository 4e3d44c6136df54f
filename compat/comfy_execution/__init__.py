"""`comfy_execution` for node packs: `graph_utils` (GraphBuilder for node expansion) and `graph` (ExecutionBlocker)."""

from typing import Any

from compat.host import refuse


def __getattr__(name: str) -> Any:
    refuse("comfy_execution", name)
