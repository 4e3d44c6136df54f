"""`python main.py [serve]`: the HTTP + WebSocket server with its job worker."""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
from pathlib import Path
from typing import Any

from cli.commands import COMMANDS
from cli.runtime import add_common_arguments, build_runtime
from engine.cache import OutputCache
from engine.executor import Executor
from engine.jobs import JobQueue
from engine.store import Store, StoreUnavailable
from server.security import all_loopback, listen_hosts
from server.state import ServerConfig, ServerState
from server.wire import history_messages

log = logging.getLogger("loom.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "--listen",
        nargs="?",
        const="0.0.0.0",
        default="127.0.0.1",
        metavar="IP",
        help="address to listen on (default 127.0.0.1; the flag alone means 0.0.0.0)",
    )
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument(
        "--auth-token",
        default=None,
        help="require this token (Authorization: Bearer TOKEN, or ?token= for the socket and images)",
    )
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache-lru",
        type=int,
        default=None,
        metavar="N",
        help="keep at most N cached node outputs; 0: classic mode, only the last prompt's outputs are kept",
    )
    cache.add_argument("--cache-none", action="store_true", help="cache no node outputs (least memory)")
    parser.add_argument("--preview-method", choices=("none", "auto", "latent2rgb"), default="auto")
    parser.add_argument("--history-size", type=int, default=10000, help="history entries kept (oldest pruned)")
    parser.add_argument(
        "--database", type=Path, default=None, help="queue and history database (default: user/loom.db)"
    )
    parser.add_argument("--max-upload-size", type=float, default=100, metavar="MB", help="largest upload accepted")
    parser.add_argument(
        "--workers",
        choices=("local", "ray"),
        default="local",
        help="run jobs in this process (default) or on a pool of Ray workers (needs requirements-ray.txt)",
    )
    parser.add_argument(
        "--ray-address", default=None, metavar="ADDR", help="Ray cluster to join (default: start a local one)"
    )
    parser.add_argument(
        "--workers-per-node",
        type=int,
        default=None,
        metavar="N",
        help="Ray workers on each node (default: one per GPU, or one CPU worker)",
    )


def build_state(args: argparse.Namespace) -> ServerState:
    """Runtime, store, executor and queue from the flags; the web UI and packs are served as they are found."""
    runtime = build_runtime(args)
    store = Store(args.database or runtime.folders.user / "loom.db", history_cap=args.history_size)
    pool = start_pool(args, runtime) if args.workers == "ray" else None
    executor: Any = pool if pool is not None else Executor(runtime.registry, cache=output_cache(args), env=runtime.env)
    config = ServerConfig(
        host=args.listen,
        port=args.port,
        auth_token=args.auth_token,
        max_upload_bytes=int(args.max_upload_size * 1024 * 1024),
    )
    extensions = getattr(runtime, "extensions", None) or {}
    jobs = JobQueue(store, executor, history_messages, runtime.env, workers=pool.size if pool is not None else 1)
    state = ServerState(config, runtime.registry, runtime.folders, jobs, runtime.env, extensions)
    state.workers = pool
    state.packs = None if args.disable_custom_nodes else runtime.packs
    return state


def start_pool(args: argparse.Namespace, runtime: Any) -> Any:
    """The Ray worker pool, started; imported here so that single-process Loom never loads Ray."""
    from scaleout.pool import RayWorkerPool

    pool = RayWorkerPool(
        args, runtime.registry, runtime.folders, address=args.ray_address, workers_per_node=args.workers_per_node
    )
    pool.start()
    return pool


def output_cache(args: argparse.Namespace) -> OutputCache:
    """`--cache-none` keeps nothing between jobs; `--cache-lru N` keeps at most N node outputs, and `--cache-lru 0`
    only the outputs of the last prompt (classic mode); by default, outputs up to a memory bound."""
    if args.cache_none:
        return OutputCache(max_bytes=0)
    if args.cache_lru == 0:
        return OutputCache(classic=True)
    return OutputCache(max_entries=args.cache_lru)


def exposure_warning(listen: str, token: str | None) -> str | None:
    """What to tell a creator who opens Loom to the network without a token (None when it is safe)."""
    if all_loopback(listen) or token:
        return None
    return (
        f"listening on {listen} without --auth-token: anyone who can reach this port can run jobs and read "
        f"your outputs. Consider --auth-token {secrets.token_urlsafe(16)}"
    )


def run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from server.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    warning = exposure_warning(args.listen, args.auth_token)
    if warning:
        log.warning(warning)
    try:
        state = build_state(args)
    except StoreUnavailable as exc:
        print(f"Loom: {exc}", file=sys.stderr, flush=True)
        return 2
    hosts = listen_hosts(args.listen)
    url_host = "127.0.0.1" if hosts[0] in ("0.0.0.0", "::") else hosts[0]
    print(f"Loom: serving on http://{url_host}:{args.port}", flush=True)
    try:
        web.run_app(create_app(state), host=hosts, port=args.port, print=None, access_log=None)
    finally:
        if state.workers is not None:
            state.workers.close()
    return 0


COMMANDS["serve"] = (add_arguments, run, "serve the canvas and the HTTP + WebSocket API (the default)")
