"""The example workflows in workflows/, listed and served read-only for the canvas's Examples menu; and
`POST /workflow/convert`, canvas format in, API format out (the converter `main.py convert` uses)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.folders import UnsafePath, confined
from engine.registry import NodeRegistry
from formats.canvas import canvas_to_api
from formats.problems import WorkflowFileError
from formats.workflow_files import classify
from server.http import json_error, read_json
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
        return json_error(f"no example workflow named {name!r}", "not_found", 404)
    if path.suffix != ".json" or not path.is_file():
        return json_error(f"no example workflow named {name!r}", "not_found", 404)
    return web.FileResponse(path, headers={"Content-Type": "application/json"})


def _to_api(body: dict[str, Any], registry: NodeRegistry) -> dict[str, Any]:
    doc = classify(body, "the request body")
    return doc.api if doc.api is not None else canvas_to_api(doc.canvas or {}, registry)


async def convert(request: web.Request) -> web.Response:
    """A canvas-format workflow -> its API format (an API-format body comes back as it is); every problem found
    comes back in one 400 answer, per node in `node_errors`."""
    state = request.app[STATE]
    body = await read_json(request, state.config.max_prompt_bytes)
    try:
        api = await asyncio.get_running_loop().run_in_executor(None, _to_api, body, state.registry)
    except WorkflowFileError as exc:
        node_errors: dict[str, Any] = {}
        for problem in exc.problems:
            if problem.node_id is not None:
                entry = node_errors.setdefault(problem.node_id, {"errors": [], "class_type": problem.class_type})
                entry["errors"].append(problem.to_error())
        error = {**exc.problems[0].to_error(), "message": str(exc)} if exc.problems else {"message": str(exc)}
        return web.json_response({"error": error, "node_errors": node_errors}, status=400)
    return web.json_response(api)


ROUTES = [
    ("GET", "/workflows", list_workflows),
    ("GET", "/workflows/{name:.+}", get_workflow),
    ("POST", "/workflow/convert", convert),
]
