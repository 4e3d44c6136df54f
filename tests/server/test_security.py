"""Each guard, attacked: DNS rebinding (Host), cross-site requests (Origin), the access token, body limits."""

from __future__ import annotations

import aiohttp
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from cli import build_parser
from cli.serve import exposure_warning
from tests.server.conftest import Running, connect

SIMPLE = {
    "1": {"class_type": "TestNumber", "inputs": {"value": 1}},
    "2": {"class_type": "TestSaveImage", "inputs": {"value": ["1", 0]}},
}


def port(srv: Running) -> str:
    return srv.url.rsplit(":", 1)[1]


async def test_rebinding_host_refused_on_loopback(server: Running) -> None:
    for host in ("evil.example", "evil.example:" + port(server), "127.0.0.1.evil.example", "[::2]"):
        async with server.http.get(server.url + "/object_info", headers={"Host": host}) as r:
            assert r.status == 403, host
    for host in ("localhost:" + port(server), "127.0.0.1:" + port(server), "[::1]:" + port(server), "localhost"):
        async with server.http.get(server.url + "/object_info", headers={"Host": host}) as r:
            assert r.status == 200, host


async def test_cross_site_post_refused(server: Running) -> None:
    own = f"http://127.0.0.1:{port(server)}"
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{int(port(server)) + 1}", "https://localhost"):
        for path in ("/prompt", "/queue", "/interrupt", "/upload/image", "/history", "/free"):
            async with server.http.post(server.url + path, json={"prompt": SIMPLE}, headers={"Origin": origin}) as r:
                assert r.status == 403, (origin, path)
    assert (await server.http.get(server.url + "/queue")).status == 200
    async with server.http.get(server.url + "/queue") as r:
        assert (await r.json())["queue_pending"] == []
    for origin in (own, f"http://localhost:{port(server)}", None):
        headers = {"Origin": origin} if origin else {}
        async with server.http.post(server.url + "/prompt", json={"prompt": SIMPLE}, headers=headers) as r:
            assert r.status == 200, origin


async def test_cross_site_websocket_refused(server: Running) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(server, "x", origin="http://evil.example"):
            pass
    assert caught.value.response.status_code == 403
    async with connect(server, "x", origin=f"http://localhost:{port(server)}") as ws:
        assert "status" in await ws.recv()


async def test_any_host_but_same_origin_when_listening_widely(make_server) -> None:
    srv = await make_server(host="0.0.0.0")
    async with srv.http.get(srv.url + "/object_info", headers={"Host": "my-box.lan:8188"}) as r:
        assert r.status == 200
    headers = {"Host": "my-box.lan:8188", "Origin": "http://evil.example"}
    async with srv.http.post(srv.url + "/prompt", json={"prompt": SIMPLE}, headers=headers) as r:
        assert r.status == 403
    headers = {"Host": "my-box.lan:8188", "Origin": "http://my-box.lan:8188"}
    async with srv.http.post(srv.url + "/prompt", json={"prompt": SIMPLE}, headers=headers) as r:
        assert r.status == 200


async def test_token_required_everywhere(make_server) -> None:
    srv = await make_server(auth_token="s3cret")
    for method, path in (("GET", "/object_info"), ("GET", "/api/queue"), ("GET", "/"), ("POST", "/prompt"),
                         ("GET", "/view?filename=x.png"), ("POST", "/interrupt"), ("GET", "/history")):  # fmt: skip
        async with srv.http.request(method, srv.url + path) as r:
            assert r.status == 401, path
        async with srv.http.request(method, srv.url + path, headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401, path
    bearer = {"Authorization": "Bearer s3cret"}
    async with srv.http.get(srv.url + "/object_info", headers=bearer) as r:
        assert r.status == 200
    async with srv.http.post(srv.url + "/prompt", json={"prompt": SIMPLE}, headers=bearer) as r:
        assert r.status == 200
    # a query token is for reads (image URLs) and the socket, never for state changes
    async with srv.http.post(srv.url + "/prompt?token=s3cret", json={"prompt": SIMPLE}) as r:
        assert r.status == 401
    with pytest.raises(InvalidStatus):
        async with connect(srv, "t"):
            pass
    async with websockets.connect(srv.ws_url + "?clientId=t&token=s3cret") as ws:
        assert "status" in await ws.recv()


async def test_query_token_opens_the_canvas_with_a_cookie(make_server) -> None:
    srv = await make_server(auth_token="s3cret")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(srv.url + "/?token=s3cret") as r:
            assert r.status == 200
            assert "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]
        async with browser.post(srv.url + "/prompt", json={"prompt": SIMPLE}) as r:  # the page's own requests
            assert r.status == 200


def test_binds_loopback_unless_told() -> None:
    assert build_parser().parse_args(["serve"]).listen == "127.0.0.1"
    assert build_parser().parse_args(["serve", "--listen"]).listen == "0.0.0.0"
    assert build_parser().parse_args(["serve", "--listen", "10.0.0.5"]).listen == "10.0.0.5"
    assert build_parser().parse_args(["serve"]).port == 8188
    assert exposure_warning("127.0.0.1", None) is None
    assert exposure_warning("0.0.0.0", "tok") is None
    assert "--auth-token" in (exposure_warning("0.0.0.0", None) or "")
    assert "--auth-token" in (exposure_warning("127.0.0.1,192.168.1.4", None) or "")
    assert exposure_warning("127.0.0.1,::1", None) is None


async def test_prompt_body_limit(make_server) -> None:
    srv = await make_server(max_prompt_bytes=2000)
    big = {**SIMPLE, "9": {"class_type": "TestNumber", "inputs": {"value": 1}, "_meta": {"title": "x" * 5000}}}
    async with srv.http.post(srv.url + "/prompt", json={"prompt": big}) as r:
        assert r.status == 413 and (await r.json())["error"]["type"] == "payload_too_large"

    async def chunks():  # no Content-Length: the limit holds for streamed bodies too
        for _ in range(10):
            yield b" " * 1000

    async with srv.http.post(srv.url + "/prompt", data=chunks()) as r:
        assert r.status == 413


async def test_query_token_opens_a_built_canvas_and_its_assets(make_server, tmp_path) -> None:
    web_root = tmp_path / "dist"
    (web_root / "assets").mkdir(parents=True)
    (web_root / "index.html").write_text('<html><script src="/assets/app.js"></script></html>')
    (web_root / "assets" / "app.js").write_text("console.log('canvas')")
    srv = await make_server(auth_token="s3cret", web_root=web_root)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(srv.url + "/?token=s3cret") as r:  # index.html is a file response
            assert r.status == 200 and "HttpOnly" in r.headers["Set-Cookie"]
        async with browser.get(srv.url + "/assets/app.js") as r:  # the page's assets, with the cookie only
            assert r.status == 200 and "canvas" in await r.text()
        async with browser.get(srv.url + "/object_info") as r:
            assert r.status == 200
    async with aiohttp.ClientSession() as stranger, stranger.get(srv.url + "/assets/app.js") as r:
        assert r.status == 401
