"""The canvas (web/dist/) at `/`, and the front-end files of node packs at `/extensions/<pack>/...`."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from engine.folders import UnsafePath, confined
from server.http import json_error
from server.state import STATE

MISSING_CANVAS = """<!doctype html><html><head><meta charset="utf-8"><title>Loom</title></head>
<body><h1>Loom is running</h1><p>The canvas is not built. Run <code>make run</code> to build and serve it.
The API answers at <code>/prompt</code>, <code>/object_info</code> and <code>/ws</code>.</p></body></html>"""


def _file(root: Path, rel: str) -> Path | None:
    try:
        path = confined(root, rel)
    except UnsafePath:
        return None
    return path if path.is_file() else None


async def canvas(request: web.Request) -> web.StreamResponse:
    root = request.app[STATE].config.web_root
    rel = request.match_info.get("path", "")
    index = root / "index.html"
    if not index.is_file():
        if rel:
            return json_error("not found", "not_found", 404)
        return web.Response(text=MISSING_CANVAS, content_type="text/html")
    path = _file(root, rel) if rel else index
    if path is None:
        return json_error("not found", "not_found", 404)
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"} if path == index else None)


async def extension_file(request: web.Request) -> web.StreamResponse:
    """A pack's front-end file; for a name no pack has, the front end's own `extensions/` folder (ComfyUI's front
    end keeps shims there that packs import, e.g. /extensions/core/groupNode.js)."""
    state = request.app[STATE]
    pack, rel = request.match_info["pack"], request.match_info["path"]
    root = state.extensions.get(pack)
    path = _file(root, rel) if root is not None else _file(state.config.web_root / "extensions", f"{pack}/{rel}")
    if path is None:
        return json_error("not found", "not_found", 404)
    return web.FileResponse(path)


ROUTES = [
    ("GET", "/extensions/{pack}/{path:.+}", extension_file),
    ("GET", "/{path:.*}", canvas),
]
