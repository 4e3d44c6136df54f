"""Templates and translations for a front end: Loom's own examples (workflows/) as `/templates/index.json` and
`/templates/{name}.json`, node packs' example workflows (`/workflow_templates`), and packs' locales (`/i18n`)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.folders import UnsafePath, confined
from server.http import BadRequest
from server.state import STATE

log = logging.getLogger("loom.templates")

PACK_EXAMPLE_FOLDERS = ("example_workflows", "examples", "example")
# a locale file -> the key it goes under (main.json's keys go at the top)
LOCALE_FILES = {
    "main.json": None,
    "nodeDefs.json": "nodeDefs",
    "commands.json": "commands",
    "settings.json": "settings",
}


def examples(root: Path) -> list[tuple[str, dict[str, Any]]]:
    """(name, the `extra.info` of its canvas-format file) of every example in `root`; API-format twins are left
    out (a front end opens canvas files)."""
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.glob("*.json")):
        if path.name.endswith(".api.json"):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("example %s is not readable JSON: %s", path.name, exc)
            continue
        info = data.get("extra", {}).get("info", {}) if isinstance(data, dict) else {}
        found.append((path.stem, info if isinstance(info, dict) else {}))
    return found


def template_index(root: Path) -> list[dict[str, Any]]:
    """The reference's template index shape: one category of templates, each with a title and a description."""
    templates = [
        {
            "name": name,
            "title": str(info.get("title") or name.replace("_", " ").capitalize()),
            "description": str(info.get("description") or ""),
            "mediaType": "image",
            "mediaSubtype": "png",
        }
        for name, info in examples(root)
    ]
    return [{"moduleName": "default", "title": "Loom examples", "type": "image", "templates": templates}]


def _pack_roots(packs: Iterable[Any] | None) -> dict[str, Path]:
    """Pack name -> its folder, for the packs that loaded."""
    return {p.name: Path(p.path) for p in packs or () if p.status == "ok" and p.path}


def pack_templates(packs: Iterable[Any] | None) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, root in sorted(_pack_roots(packs).items()):
        for folder in PACK_EXAMPLE_FOLDERS:
            if (root / folder).is_dir():
                names = sorted(p.stem for p in (root / folder).glob("*.json"))
                if names:
                    found[name] = names
                break
    return found


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def translations(packs: Iterable[Any] | None) -> dict[str, Any]:
    """`{locale: {...main.json, nodeDefs, commands, settings}}` merged over every pack's `locales/` folder."""
    merged: dict[str, Any] = {}
    for name, root in sorted(_pack_roots(packs).items()):
        locales = root / "locales"
        if not locales.is_dir():
            continue
        for lang in sorted(p for p in locales.iterdir() if p.is_dir()):
            for filename, key in LOCALE_FILES.items():
                path = lang / filename
                if not path.is_file():
                    continue
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    log.warning("pack %s: %s is not readable JSON: %s", name, path, exc)
                    continue
                if isinstance(data, dict):
                    _merge(merged.setdefault(lang.name, {}), data if key is None else {key: data})
    return merged


async def _off_loop(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def index(request: web.Request) -> web.Response:
    return web.json_response(await _off_loop(template_index, request.app[STATE].config.workflows_root))


async def template(request: web.Request) -> web.StreamResponse:
    root = request.app[STATE].config.workflows_root
    name = request.match_info["name"]
    if "/" in name or name.endswith(".api"):
        raise BadRequest(f"no template named {name!r}", "not_found", 404)
    try:
        path = confined(root, name + ".json")
    except UnsafePath as exc:
        raise BadRequest(str(exc), "invalid_path") from exc
    if not path.is_file():
        raise BadRequest(f"no template named {name!r}", "not_found", 404)
    return web.FileResponse(path, headers={"Content-Type": "application/json"})


async def workflow_templates(request: web.Request) -> web.Response:
    return web.json_response(await _off_loop(pack_templates, request.app[STATE].packs))


async def workflow_template(request: web.Request) -> web.StreamResponse:
    pack, name = request.match_info["pack"], request.match_info["name"]
    roots = _pack_roots(request.app[STATE].packs)
    for folder in PACK_EXAMPLE_FOLDERS if pack in roots else ():
        try:
            path = confined(roots[pack], folder, name)
        except UnsafePath as exc:
            raise BadRequest(str(exc), "invalid_path") from exc
        if path.suffix == ".json" and path.is_file():
            return web.FileResponse(path, headers={"Content-Type": "application/json"})
    raise BadRequest(f"no example workflow {name!r} in pack {pack!r}", "not_found", 404)


async def i18n(request: web.Request) -> web.Response:
    return web.json_response(await _off_loop(translations, request.app[STATE].packs))


ROUTES = [
    ("GET", "/templates/index.json", index),
    ("GET", "/templates/{name}.json", template),
    ("GET", "/workflow_templates", workflow_templates),
    ("GET", "/workflow_templates/{pack}/{name}", workflow_template),
    ("GET", "/i18n", i18n),
]
