"""Queueing and history: /prompt, /queue, /history (DESIGN.md section 6, "Queueing" and "History")."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

from aiohttp import web

from engine.admit import Rejected
from engine.store import DuplicateJob
from engine.workflow import WorkflowError
from server.http import BadRequest, read_json
from server.packs import on_prompt
from server.state import STATE, ServerState

SMALL_BODY = 1024 * 1024


def _queued(state: ServerState, body: dict[str, Any]) -> dict[str, Any] | web.Response:
    """Check one /prompt body and hand it to the queue, which accepts it as one operation (parse, validate,
    convert, store); runs in a worker thread, since validation may touch files."""
    prompt = body.get("prompt")
    if not isinstance(prompt, dict):
        raise BadRequest("no prompt given: the body needs 'prompt', the workflow in API format")
    client_id = body.get("client_id")
    if client_id is not None and not isinstance(client_id, str):
        raise BadRequest("'client_id' must be a string")
    extra_data = body.get("extra_data") or {}
    if not isinstance(extra_data, dict):
        raise BadRequest("'extra_data' must be an object")
    targets = body.get("partial_execution_targets")
    if targets is not None and not (isinstance(targets, list) and all(isinstance(t, str) for t in targets)):
        raise BadRequest("'partial_execution_targets' must be a list of node ids")
    number = body.get("number")
    if number is not None:
        if isinstance(number, bool) or not isinstance(number, (int, float, str)):
            raise BadRequest("'number' must be a number")
        try:
            number = float(number)
        except ValueError as exc:
            raise BadRequest("'number' must be a number") from exc
        if not math.isfinite(number):
            raise BadRequest("'number' must be finite")
    prompt_id = body.get("prompt_id")
    if prompt_id is not None and (not isinstance(prompt_id, str) or not prompt_id):
        raise BadRequest("'prompt_id' must be a non-empty string")
    if client_id is not None:
        extra_data = {**extra_data, "client_id": client_id}
    try:
        job, admission = state.jobs.accept(
            prompt,
            targets=targets,
            prompt_id=prompt_id,
            client_id=client_id,
            extra_data=extra_data,
            front=bool(body.get("front")),
            number=number,
        )
    except WorkflowError as exc:
        raise BadRequest(str(exc), exc.type) from exc
    except Rejected as rejected:
        return web.json_response(rejected.result.to_response(), status=400)
    except DuplicateJob as exc:
        raise BadRequest(str(exc)) from exc
    return {"prompt_id": job.prompt_id, "number": job.number, "node_errors": admission.node_errors()}


async def post_prompt(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = on_prompt(state, await read_json(request, state.config.max_prompt_bytes))
    answer = await asyncio.get_running_loop().run_in_executor(None, _queued, state, body)
    return answer if isinstance(answer, web.Response) else web.json_response(answer)


async def get_prompt(request: web.Request) -> web.Response:
    jobs = request.app[STATE].jobs
    remaining = await asyncio.get_running_loop().run_in_executor(None, jobs.remaining)
    return web.json_response({"exec_info": {"queue_remaining": remaining}})


async def get_queue(request: web.Request) -> web.Response:
    running, pending = await asyncio.get_running_loop().run_in_executor(None, request.app[STATE].jobs.queue)
    return web.json_response(
        {"queue_running": [j.item() for j in running], "queue_pending": [j.item() for j in pending]}
    )


async def _clear_or_delete(
    request: web.Request, clear: Callable[[], Any], delete: Callable[[list[str]], Any]
) -> web.Response:
    """The body of POST /queue and POST /history: `clear` empties the list, `delete` drops the prompt ids given."""
    body = await read_json(request, SMALL_BODY, allow_empty=True)
    ids = body.get("delete", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadRequest("'delete' must be a list of prompt ids", "invalid_request")
    loop = asyncio.get_running_loop()
    if body.get("clear"):
        await loop.run_in_executor(None, clear)
    if ids:
        await loop.run_in_executor(None, delete, ids)
    return web.Response(status=200)


async def post_queue(request: web.Request) -> web.Response:
    jobs = request.app[STATE].jobs
    return await _clear_or_delete(request, jobs.clear, jobs.delete)


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"'{name}' must be an integer", "invalid_request") from exc
    if value < 0:
        raise BadRequest(f"'{name}' must not be negative", "invalid_request")
    return value


async def get_history(request: web.Request) -> web.Response:
    store = request.app[STATE].jobs.store
    max_items, offset = _int_param(request, "max_items"), _int_param(request, "offset")
    entries = await asyncio.get_running_loop().run_in_executor(None, store.history, max_items, offset)
    return web.json_response(entries)


async def get_history_entry(request: web.Request) -> web.Response:
    prompt_id = request.match_info["prompt_id"]
    entry = await asyncio.get_running_loop().run_in_executor(
        None, request.app[STATE].jobs.store.history_entry, prompt_id
    )
    return web.json_response({prompt_id: entry} if entry is not None else {})


async def post_history(request: web.Request) -> web.Response:
    store = request.app[STATE].jobs.store
    return await _clear_or_delete(request, store.clear_history, store.delete_history)


ROUTES = [
    ("POST", "/prompt", post_prompt),
    ("GET", "/prompt", get_prompt),
    ("GET", "/queue", get_queue),
    ("POST", "/queue", post_queue),
    ("GET", "/history", get_history),
    ("GET", "/history/{prompt_id}", get_history_entry),
    ("POST", "/history", post_history),
]
