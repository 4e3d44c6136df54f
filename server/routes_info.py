"""What the server knows: /object_info, /system_stats, /models, /embeddings, /extensions, /features."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
from pathlib import Path
from typing import Any

import psutil
from aiohttp import web

from engine.folders import MODEL_FOLDERS
from server.http import json_error
from server.state import STATE

LOOM_VERSION = "0.1.0"
COMFYUI_VERSION = "0.3.64"  # the reference release whose API Loom's matches (it pins comfyui-frontend-package 1.27.10)


async def object_info(request: web.Request) -> web.Response:
    registry = request.app[STATE].registry
    info = await asyncio.get_running_loop().run_in_executor(None, registry.object_info)
    return web.json_response(info)


async def object_info_one(request: web.Request) -> web.Response:
    registry = request.app[STATE].registry
    spec = registry.get(request.match_info["node_class"])
    if spec is None:
        return web.json_response({})
    schema = await asyncio.get_running_loop().run_in_executor(None, spec.schema)
    return web.json_response({spec.class_type: schema})


def _devices(ram_total: int, ram_free: int) -> list[dict[str, Any]]:
    """The CPU, plus CUDA devices when torch is already loaded (the server never imports it just to answer)."""
    devices: list[dict[str, Any]] = [
        {
            "name": "cpu",
            "type": "cpu",
            "index": None,
            "vram_total": ram_total,
            "vram_free": ram_free,
            "torch_vram_total": 0,
            "torch_vram_free": 0,
        }
    ]
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is not None and cuda.is_available():
        for index in range(cuda.device_count()):
            free, total = cuda.mem_get_info(index)
            reserved, allocated = cuda.memory_reserved(index), cuda.memory_allocated(index)
            devices.append(
                {
                    "name": f"cuda:{index} {cuda.get_device_name(index)}",
                    "type": "cuda",
                    "index": index,
                    "vram_total": total,
                    "vram_free": free,
                    "torch_vram_total": reserved,
                    "torch_vram_free": reserved - allocated,
                }
            )
    return devices


async def system_stats(request: web.Request) -> web.Response:
    memory = psutil.virtual_memory()
    torch = sys.modules.get("torch")
    system = {
        "os": os.name,
        "platform": platform.platform(),
        "ram_total": memory.total,
        "ram_free": memory.available,
        "loom_version": LOOM_VERSION,
        "comfyui_version": COMFYUI_VERSION,
        "python_version": sys.version,
        "pytorch_version": getattr(torch, "__version__", ""),
        "embedded_python": False,
        "argv": sys.argv,
    }
    body: dict[str, Any] = {"system": system, "devices": _devices(memory.total, memory.available)}
    pool = request.app[STATE].workers
    if pool is not None:
        body["workers"] = pool.stats()
    return web.json_response(body)


async def embeddings(request: web.Request) -> web.Response:
    folders = request.app[STATE].folders
    names = await asyncio.get_running_loop().run_in_executor(None, folders.list_models, "embeddings")
    return web.json_response([os.path.splitext(name)[0] for name in names])


async def models(request: web.Request) -> web.Response:
    folders = request.app[STATE].folders
    return web.json_response(sorted(set(MODEL_FOLDERS) | set(folders.models)))


async def models_in(request: web.Request) -> web.Response:
    folders = request.app[STATE].folders
    folder = request.match_info["folder"]
    if folders.canonical(folder) not in folders.models:
        return json_error(f"unknown model folder {folder!r}", "not_found", 404)
    names = await asyncio.get_running_loop().run_in_executor(None, folders.list_models, folder)
    return web.json_response(names)


def extension_urls(extensions: dict[str, Path]) -> list[str]:
    urls = []
    for pack, root in sorted(extensions.items()):
        if root.is_dir():
            urls += [f"/extensions/{pack}/{p.relative_to(root).as_posix()}" for p in sorted(root.rglob("*.js"))]
    return urls


async def extensions(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(extension_urls(dict(state.extensions)))


async def features(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].feature_flags())


ROUTES = [
    ("GET", "/object_info", object_info),
    ("GET", "/object_info/{node_class}", object_info_one),
    ("GET", "/system_stats", system_stats),
    ("GET", "/embeddings", embeddings),
    ("GET", "/models", models),
    ("GET", "/models/{folder}", models_in),
    ("GET", "/extensions", extensions),
    ("GET", "/features", features),
]
