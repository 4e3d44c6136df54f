"""The example workflows in workflows/, listed and served read-only for the canvas's Examples menu."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from engine.folders import UnsafePath, confined
from server.state import STATE


def _names(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.json") if p.is_file())


async def list_workflows(request: web.Request) -> web.Response:
    return web.json_response(_names(request.app[STATE].config.workflows_root))


async def get_workflow(request: web.Request) -> web.StreamResponse:
    root = request.app[STATE].config.workflows_root
    name = request.match_info["name"]
    try:
        path = confined(root, name)
    except UnsafePath:
        return web.json_response({"error": f"no example workflow named {name!r}"}, status=404)
    if path.suffix != ".json" or not path.is_file():
        return web.json_response({"error": f"no example workflow named {name!r}"}, status=404)
    return web.FileResponse(path, headers={"Content-Type": "application/json"})


ROUTES = [
    ("GET", "/workflows", list_workflows),
    ("GET", "/workflows/{name:.+}", get_workflow),
]
