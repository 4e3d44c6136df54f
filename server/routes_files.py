"""Files: /view, /upload/image, /upload/mask. Every path from a request goes through engine.folders.confined."""

from __future__ import annotations

import asyncio
import json
import mimetypes
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from engine.folders import Folders, UnsafePath, confined, write_atomic
from server.http import BadRequest, json_error
from server.images import ImageRejected, apply_mask, channel, named_for, preview, resave
from server.state import STATE

# A file served from output/ or input/ must never run as a page on Loom's own origin.
VIEW_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; sandbox",
    "X-Content-Type-Options": "nosniff",
}


def _target(folders: Folders, kind: str, subfolder: str, filename: str) -> Path:
    if not filename:
        raise BadRequest("'filename' is required", "invalid_request")
    try:
        return confined(folders.typed_dir(kind), subfolder, filename)
    except UnsafePath as exc:
        raise BadRequest(str(exc), "invalid_path") from exc


async def view(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    q = request.query
    path = _target(state.folders, q.get("type", "output") or "output", q.get("subfolder", ""), q.get("filename", ""))
    if not path.is_file():
        return json_error("file not found", "not_found", 404, headers=VIEW_HEADERS)
    pixels = state.config.max_image_pixels
    loop = asyncio.get_running_loop()
    try:
        if q.get("preview"):
            data, content_type = await loop.run_in_executor(None, preview, path, q["preview"], pixels)
            return web.Response(body=data, content_type=content_type, headers=VIEW_HEADERS)
        if q.get("channel") and q["channel"] != "rgba":
            data = await loop.run_in_executor(None, channel, path, q["channel"], pixels)
            return web.Response(body=data, content_type="image/png", headers=VIEW_HEADERS)
    except ImageRejected as exc:
        raise BadRequest(str(exc), "invalid_image") from exc
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    headers = {
        **VIEW_HEADERS,
        "Content-Type": content_type,
        "Content-Disposition": f'filename="{path.name.replace(chr(34), "")}"',
    }
    return web.FileResponse(path, headers=headers)


def _free_name(path: Path, data: bytes, overwrite: bool) -> Path:
    """`path`, or when taken (and not to be overwritten) the same content's path or `name (N).ext`."""
    if overwrite or not path.exists():
        return path
    if path.is_file() and path.read_bytes() == data:
        return path
    stem, suffix = path.stem, path.suffix
    n = 1
    while (candidate := path.with_name(f"{stem} ({n}){suffix}")).exists():
        n += 1
    return candidate


def _write(base: Path, path: Path, data: bytes, overwrite: bool) -> Path:
    path = _free_name(path, data, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    confined(base, str(path.relative_to(base.resolve())))  # the folders just made must not lead out either
    write_atomic(path, data)
    return path


async def _upload(request: web.Request, mask: bool) -> web.Response:
    state = request.app[STATE]
    try:
        form = await request.post()
    except (ValueError, HttpProcessingError) as exc:  # what aiohttp's multipart parser raises on a malformed form
        raise BadRequest(f"the upload is not a valid multipart form: {exc}", "invalid_request") from exc
    field = form.get("image")
    if not isinstance(field, web.FileField):
        raise BadRequest("the form needs a file in 'image'", "invalid_request")
    data = field.file.read(state.config.max_upload_bytes + 1)
    if len(data) > state.config.max_upload_bytes:
        raise BadRequest(f"upload is larger than {state.config.max_upload_bytes} bytes", "payload_too_large", 413)
    kind = str(form.get("type") or "input")
    subfolder = str(form.get("subfolder") or "")
    overwrite = str(form.get("overwrite") or "").lower() in ("true", "1")
    name = field.filename or ""
    if "/" in name or "\\" in name:
        raise BadRequest("the file name must not contain a folder; use 'subfolder'", "invalid_path")
    target = _target(state.folders, kind, subfolder, name)
    original: Path | None = None
    if mask:
        original = _original(state.folders, form.get("original_ref"))
    pixels = state.config.max_image_pixels

    def store() -> Path:
        clean, fmt = (apply_mask(original, data, pixels), "PNG") if original is not None else resave(data, pixels)
        path = target.with_name(named_for(target.name, fmt))
        return _write(state.folders.typed_dir(kind), path, clean, overwrite)

    try:
        written = await asyncio.get_running_loop().run_in_executor(None, store)
    except ImageRejected as exc:
        raise BadRequest(str(exc), "invalid_image") from exc
    except UnsafePath as exc:
        raise BadRequest(str(exc), "invalid_path") from exc
    return web.json_response({"name": written.name, "subfolder": subfolder, "type": kind})


def _original(folders: Folders, raw: Any) -> Path:
    try:
        ref = json.loads(str(raw or ""))
    except ValueError as exc:
        raise BadRequest("'original_ref' must be JSON: {filename, subfolder, type}", "invalid_request") from exc
    if not isinstance(ref, dict) or not isinstance(ref.get("filename"), str):
        raise BadRequest("'original_ref' must name the image: {filename, subfolder, type}", "invalid_request")
    path = _target(folders, str(ref.get("type") or "output"), str(ref.get("subfolder") or ""), ref["filename"])
    if not path.is_file():
        raise BadRequest(f"the original image {ref['filename']!r} does not exist", "invalid_request", 404)
    return path


async def upload_image(request: web.Request) -> web.Response:
    return await _upload(request, mask=False)


async def upload_mask(request: web.Request) -> web.Response:
    return await _upload(request, mask=True)


ROUTES = [
    ("GET", "/view", view),
    ("POST", "/upload/image", upload_image),
    ("POST", "/upload/mask", upload_mask),
]
