"""`comfy_execution` for node packs: `graph_utils` (GraphBuilder for node expansion), `graph` (ExecutionBlocker)
and, by name only, the reference's caching and validation modules (compat.surface)."""

from typing import Any

from compat.surface import complete, resolve

complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
