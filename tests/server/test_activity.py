"""RequestActivity: quiet between HTTP requests, busy while one is answered; an open WebSocket is not a request."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from server.activity import RequestActivity


async def test_quiet_only_between_requests() -> None:
    activity = RequestActivity()
    entered, finish = asyncio.Event(), asyncio.Event()

    async def slow(_request: web.Request) -> web.Response:
        entered.set()
        await finish.wait()
        return web.Response(text="done")

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _msg in ws:
            pass
        return ws

    async def broken(_request: web.Request) -> web.Response:
        raise RuntimeError("handler failed")

    app = web.Application(middlewares=[activity.middleware])
    app.router.add_get("/slow", slow)
    app.router.add_get("/ws", socket)
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as http:
            assert activity.wait_quiet(0) and activity.active == 0
            async with http.ws_connect(url + "/ws"):
                assert activity.wait_quiet(0)  # an open socket does not hold background work back
                pending = asyncio.create_task(http.get(url + "/slow"))
                await entered.wait()
                assert not activity.wait_quiet(0) and activity.active == 1
                waiter = asyncio.get_running_loop().run_in_executor(None, activity.wait_quiet, 30.0)
                finish.set()
                response = await pending
                assert await response.text() == "done"
                assert await waiter  # a thread waiting for quiet is let go when the request ends
            async with http.get(url + "/broken") as failed:
                assert failed.status == 500
            assert activity.wait_quiet(0) and activity.active == 0  # a failing handler still counts down
    finally:
        await runner.cleanup()
