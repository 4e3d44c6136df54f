"""Users, settings and user data: /users, /settings, /userdata, /v2/userdata (the reference's shapes).

File names arrive URL-encoded in one path segment (`workflows%2Fa.json`); server.users confines each to the
requesting user's folder.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from server.http import BadRequest, read_body, read_json
from server.routes_files import VIEW_HEADERS
from server.state import STATE
from server.users import UserFiles, file_info

SMALL_BODY = 1024 * 1024
T = TypeVar("T")


def _users(request: web.Request) -> tuple[UserFiles, str]:
    users = request.app[STATE].users
    return users, users.user_id(request.headers.get("Comfy-User"))


def _flag(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    return raw.lower() == "true"


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def get_users(request: web.Request) -> web.Response:
    users = request.app[STATE].users
    if users.multi_user:
        return web.json_response({"storage": "server", "users": await _off_loop(users.users)})
    return web.json_response({"storage": "server", "migrated": True})


async def post_users(request: web.Request) -> web.Response:
    body = await read_json(request, SMALL_BODY)
    name = body.get("username")
    if not isinstance(name, str):
        raise BadRequest("'username' must be a string", "invalid_request")
    return web.json_response(await _off_loop(request.app[STATE].users.add_user, name))


async def get_settings(request: web.Request) -> web.Response:
    users, user = _users(request)
    return web.json_response(await _off_loop(users.settings, user))


async def get_setting(request: web.Request) -> web.Response:
    users, user = _users(request)
    settings = await _off_loop(users.settings, user)
    return web.json_response(settings.get(request.match_info["id"]))


async def post_settings(request: web.Request) -> web.Response:
    users, user = _users(request)
    body = await read_json(request, request.app[STATE].config.max_prompt_bytes)
    await _off_loop(users.update_settings, user, body)
    return web.Response(status=200)


async def post_setting(request: web.Request) -> web.Response:
    users, user = _users(request)
    raw = await read_body(request, request.app[STATE].config.max_prompt_bytes)
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the setting's value is not valid JSON: {exc}", "invalid_request") from exc
    await _off_loop(users.update_settings, user, {request.match_info["id"]: value})
    return web.Response(status=200)


async def list_userdata(request: web.Request) -> web.Response:
    users, user = _users(request)
    directory = request.query.get("dir", "")
    if not directory:
        raise BadRequest("'dir' is required: the folder to list, relative to the user folder", "invalid_request")
    listing = await _off_loop(
        users.list_files,
        user,
        directory,
        _flag(request, "recurse", False),
        _flag(request, "full_info", False),
        _flag(request, "split", False),
    )
    return web.json_response(listing)


async def list_userdata_v2(request: web.Request) -> web.Response:
    users, user = _users(request)
    return web.json_response(await _off_loop(users.list_dir, user, request.query.get("path", "")))


async def get_userdata(request: web.Request) -> web.StreamResponse:
    users, user = _users(request)
    path = await _off_loop(users.read, user, request.match_info["file"])
    # a stored file is data: never a page running on Loom's origin (an .html a pack or user saved)
    return web.FileResponse(path, headers={**VIEW_HEADERS, "Cache-Control": "no-cache"})


def _written(request: web.Request, users: UserFiles, user: str, path: Any) -> web.Response:
    if _flag(request, "full_info", False):
        return web.json_response(file_info(path, users.user_dir(user).resolve()))
    return web.json_response(path.relative_to(users.user_dir(user).resolve()).as_posix())


async def post_userdata(request: web.Request) -> web.Response:
    users, user = _users(request)
    data = await read_body(request, request.app[STATE].config.max_upload_bytes)
    overwrite = _flag(request, "overwrite", True)
    path = await _off_loop(users.write, user, request.match_info["file"], data, overwrite)
    return _written(request, users, user, path)


async def delete_userdata(request: web.Request) -> web.Response:
    users, user = _users(request)
    await _off_loop(users.delete, user, request.match_info["file"])
    return web.Response(status=204)


async def move_userdata(request: web.Request) -> web.Response:
    users, user = _users(request)
    source, dest = request.match_info["file"], request.match_info["dest"]
    path = await _off_loop(users.move, user, source, dest, _flag(request, "overwrite", True))
    return _written(request, users, user, path)


ROUTES = [
    ("GET", "/users", get_users),
    ("POST", "/users", post_users),
    ("GET", "/settings", get_settings),
    ("POST", "/settings", post_settings),
    ("GET", "/settings/{id}", get_setting),
    ("POST", "/settings/{id}", post_setting),
    ("GET", "/userdata", list_userdata),
    ("GET", "/v2/userdata", list_userdata_v2),
    ("GET", "/userdata/{file}", get_userdata),
    ("POST", "/userdata/{file}", post_userdata),
    ("DELETE", "/userdata/{file}", delete_userdata),
    ("POST", "/userdata/{file}/move/{dest}", move_userdata),
]
