"""Assembles the aiohttp application: middlewares, every route (also under /api), the WebSocket hub, and the
start and stop of the job worker with the app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server import (
    packs,
    routes_catalog,
    routes_control,
    routes_files,
    routes_info,
    routes_internal,
    routes_jobs,
    routes_models,
    routes_templates,
    routes_user,
    routes_workflows,
    static,
)
from server.http import errors_as_json
from server.hub import Hub
from server.logs import terminal_size
from server.security import SecurityPolicy, all_loopback, make_middleware
from server.state import STATE, ServerState

API_MODULES = (
    routes_jobs,
    routes_files,
    routes_info,
    routes_control,
    routes_workflows,
    routes_user,
    routes_models,
    routes_catalog,
    routes_internal,
    routes_templates,
    packs,
)


def create_app(state: ServerState) -> web.Application:
    config = state.config
    policy = SecurityPolicy(token=config.auth_token, loopback_only=all_loopback(config.host))
    app = web.Application(
        middlewares=[state.activity.middleware, errors_as_json, make_middleware(policy)],
        client_max_size=config.max_upload_bytes + 1024 * 1024,  # multipart overhead on top of one upload
    )
    hub = Hub(state.jobs, state.feature_flags(), previews_for_all=config.preview_method in ("auto", "latent2rgb"))
    state.hub = hub
    state.jobs.add_listener(hub)
    state.logs.on_entry = lambda entry, client_ids: _send_log_line(hub, entry, client_ids)
    app[STATE] = state
    for prefix in ("", "/api"):
        for module in API_MODULES:
            for method, path, handler in module.ROUTES:
                app.router.add_route(method, prefix + path, handler)
        app.router.add_get(prefix + "/ws", hub.handle)
    packs.attach(app, state)  # before the canvas' catch-all route
    for method, path, handler in static.ROUTES:
        app.router.add_route(method, path, handler)
    app.cleanup_ctx.append(_worker)
    app.cleanup_ctx.append(routes_catalog.background_hashing)
    return app


async def _worker(app: web.Application) -> AsyncIterator[None]:
    """The job worker lives as long as the app; stopping leaves an interrupted job queued for the next start."""
    state = app[STATE]
    state.hub.bind(asyncio.get_running_loop())
    logging.getLogger().addHandler(state.logs)
    await asyncio.get_running_loop().run_in_executor(None, state.jobs.start)
    yield
    await state.hub.close()
    await asyncio.get_running_loop().run_in_executor(None, state.jobs.stop)
    logging.getLogger().removeHandler(state.logs)


def _send_log_line(hub: Hub, entry: dict[str, str], client_ids: list[str]) -> None:
    """A new log line to the clients that subscribed to the log (from whichever thread logged it)."""
    data = {"entries": [entry], "size": terminal_size()}
    for client_id in client_ids:
        hub.send("logs", data, client_id)
