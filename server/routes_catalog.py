"""The model index: `GET /models/index` (every model file with size, mtime and, once hashed, sha256 and AutoV2) and
`POST /models/resolve` (what the canvas' Missing models panel offers for each missing name, best first)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from catalog.index import ModelIndex
from catalog.names import hash_lookup
from catalog.resolve import proposals
from server.http import BadRequest, read_json
from server.state import STATE

MAX_RESOLVE_BODY = 4 * 1024 * 1024


def _index(request: web.Request) -> ModelIndex:
    index = request.app[STATE].models
    if index is None:
        raise BadRequest("this server keeps no model index", "not_found", 404)
    return index


def _refreshed(index: ModelIndex, folder: str | None) -> dict[str, Any]:
    """Rescan (files come and go while Loom runs) and hash what is new in the background."""
    index.scan()
    if index.pending():
        index.start_background_hashing()
    files = index.files(folder)
    return {"files": [f.as_json() for f in files], "pending": sum(1 for f in files if f.sha256 is None)}


async def model_index(request: web.Request) -> web.Response:
    index = _index(request)
    folder = request.query.get("folder") or None
    if folder is not None and index.folders.canonical(folder) not in index.folders.models:
        raise BadRequest(f"unknown model folder {folder!r}", "not_found", 404)
    loop = asyncio.get_running_loop()
    return web.json_response(await loop.run_in_executor(None, _refreshed, index, folder))


def _proposals(index: ModelIndex, wanted: list[Any]) -> list[dict[str, Any]]:
    answers = []
    for item in wanted:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest("each entry of 'models' needs a 'name'", "invalid_request")
        choices = item.get("choices")
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise BadRequest("each entry of 'models' needs 'choices', a list of file names", "invalid_request")
        digest = item.get("hash") if isinstance(item.get("hash"), str) else None
        folder = str(item["folder"]) if isinstance(item.get("folder"), str) else ""
        by_hash = hash_lookup(index, index.folders.canonical(folder), hash_now=False)
        found = proposals(item["name"], choices, digest=digest, by_hash=by_hash)
        answers.append({"name": item["name"], "proposals": [{"name": r.name, "rule": r.rule} for r in found]})
    return answers


async def resolve_models(request: web.Request) -> web.Response:
    index = _index(request)
    body = await read_json(request, MAX_RESOLVE_BODY)
    wanted = body.get("models") if isinstance(body, dict) else None
    if not isinstance(wanted, list):
        raise BadRequest("the body needs 'models': [{name, choices, folder?, hash?}]", "invalid_request")
    loop = asyncio.get_running_loop()
    return web.json_response({"models": await loop.run_in_executor(None, _proposals, index, wanted)})


async def background_hashing(app: web.Application) -> AsyncIterator[None]:
    """Hash the model files the index has no hash for yet, at low priority, while the server runs."""
    index = app[STATE].models
    if index is not None and index.pending():
        index.start_background_hashing()
    yield
    if index is not None:
        index.stop()


ROUTES = [
    ("GET", "/models/index", model_index),
    ("POST", "/models/resolve", resolve_models),
]
