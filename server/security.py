"""Request guards: DNS-rebinding (Host), cross-site requests (Origin) and the optional access token.

A page on another site must not be able to queue jobs or read files on a creator's machine: state-changing requests
and WebSocket upgrades must come from the server's own origin (or from a non-browser client, which sends no
Origin), and while bound to loopback only loopback host names are served.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_COOKIE = "loom_token"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "::1"})


@dataclass(frozen=True)
class SecurityPolicy:
    """`loopback_only`: the server listens on loopback, so any other Host is a rebinding attempt."""

    token: str | None = None
    loopback_only: bool = True


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_hosts(listen: str) -> list[str]:
    """`--listen` takes one address or several separated by commas, as in the ecosystem."""
    return [h.strip() for h in listen.split(",") if h.strip()] or ["127.0.0.1"]


def all_loopback(listen: str) -> bool:
    return all(is_loopback(h) for h in listen_hosts(listen))


def split_host(value: str, default_port: int) -> tuple[str, int] | None:
    """("host", port) of a Host header or an Origin's netloc; None when it does not parse."""
    try:
        parts = urlsplit("//" + value)
        return (parts.hostname or "").lower(), parts.port or default_port
    except ValueError:
        return None


def forbidden(message: str, status: int = 403) -> web.Response:
    return web.json_response(
        {"error": {"type": "forbidden", "message": message, "details": "", "extra_info": {}}}, status=status
    )


def same_origin(origin: str, host_header: str) -> bool:
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    default_port = 443 if parts.scheme == "https" else 80
    try:
        origin_host, origin_port = parts.hostname.lower(), parts.port or default_port
    except ValueError:
        return False
    host = split_host(host_header, default_port)
    if host is None:
        return False
    if (origin_host, origin_port) == host:
        return True
    # localhost and 127.0.0.1 name the same server; nothing outside this machine can serve from them
    return origin_port == host[1] and is_loopback(origin_host) and is_loopback(host[0])


def _is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def make_middleware(policy: SecurityPolicy) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host_header = request.headers.get("Host", "")
        if policy.loopback_only and host_header:
            host = split_host(host_header, 80)
            if host is None or not is_loopback(host[0]):
                return forbidden(f"host {host_header!r} is not served here (Loom listens on loopback only)")
        origin = request.headers.get("Origin")
        changes_state = request.method not in SAFE_METHODS or _is_upgrade(request)
        if changes_state and origin is not None and not same_origin(origin, host_header):
            return forbidden(f"cross-site request from {origin!r} refused")
        if policy.token is not None:
            given = _presented_token(request)
            if given is None or not hmac.compare_digest(given.encode(), policy.token.encode()):
                return forbidden("a valid access token is required (Authorization: Bearer TOKEN)", 401)
        response = await handler(request)
        if policy.token is not None and not response.prepared:
            # every authenticated answer (files included) carries the cookie: the canvas opened with ?token=...
            # keeps working for its own asset, API and socket requests
            response.set_cookie(TOKEN_COOKIE, policy.token, httponly=True, samesite="Strict", path="/")
        return response

    return guard


def _presented_token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    # query tokens only for reads and socket upgrades (image URLs, the WebSocket), never for state changes
    if request.method in SAFE_METHODS and "token" in request.query:
        return request.query["token"]
    return request.cookies.get(TOKEN_COOKIE)
