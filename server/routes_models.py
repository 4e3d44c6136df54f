"""The model library: /experiment/models (folders and their paths), /experiment/models/{folder} (the files, with
the index of the path each was found in) and /view_metadata/{folder} (a safetensors file's `__metadata__`)."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.folders import MODEL_FOLDERS, Folders
from server.http import BadRequest
from server.state import STATE

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit on its JSON header


def safetensors_metadata(path: Path) -> dict[str, Any] | None:
    """The `__metadata__` of a safetensors header, read without loading any tensor (None when absent)."""
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("the file is shorter than a safetensors header")
        (size,) = struct.unpack("<Q", head)
        if size > MAX_HEADER_BYTES:
            raise ValueError(f"the safetensors header claims {size} bytes")
        raw = f.read(size)
    if len(raw) != size:
        raise ValueError("the safetensors header is cut short")
    header = json.loads(raw)
    if not isinstance(header, dict):
        raise ValueError("the safetensors header is not a JSON object")
    metadata = header.get("__metadata__")
    return metadata if isinstance(metadata, dict) else None


def _folder(folders: Folders, name: str) -> str:
    canonical = folders.canonical(name)
    if canonical not in folders.models:
        raise BadRequest(f"unknown model folder {name!r}", "not_found", 404)
    return canonical


def _library(folders: Folders) -> list[dict[str, Any]]:
    names = sorted(set(MODEL_FOLDERS) | set(folders.models))
    return [{"name": name, "folders": [str(p) for p in folders.model_dirs(name)]} for name in names]


def _files(folders: Folders, folder: str) -> list[dict[str, Any]]:
    roots = folders.model_dirs(folder)
    entries = []
    for name, index in folders.model_entries(folder):
        stat = (roots[index] / name).stat()
        entries.append({"name": name, "pathIndex": index, "modified": stat.st_mtime, "size": stat.st_size})
    return entries


async def library(request: web.Request) -> web.Response:
    return web.json_response(_library(request.app[STATE].folders))


async def library_folder(request: web.Request) -> web.Response:
    folders = request.app[STATE].folders
    folder = _folder(folders, request.match_info["folder"])
    return web.json_response(await asyncio.get_running_loop().run_in_executor(None, _files, folders, folder))


async def view_metadata(request: web.Request) -> web.Response:
    folders = request.app[STATE].folders
    folder = _folder(folders, request.match_info["folder"])
    filename = request.query.get("filename", "")
    if not filename.endswith(".safetensors"):
        raise BadRequest("'filename' must name a .safetensors file", "invalid_request")
    path = folders.model_path(folder, filename)
    if path is None:
        raise BadRequest(f"no model {filename!r} in {folder}", "not_found", 404)
    try:
        metadata = await asyncio.get_running_loop().run_in_executor(None, safetensors_metadata, path)
    except (OSError, ValueError) as exc:
        raise BadRequest(f"{filename} is not a readable safetensors file: {exc}", "invalid_model") from exc
    if metadata is None:
        raise BadRequest(f"{filename} has no metadata", "not_found", 404)
    return web.json_response(metadata)


ROUTES = [
    ("GET", "/experiment/models", library),
    ("GET", "/experiment/models/{folder}", library_folder),
    ("GET", "/view_metadata/{folder}", view_metadata),
]
