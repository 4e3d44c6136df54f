"""`python main.py [serve]`: the HTTP + WebSocket server with its job worker."""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cli.frontend import LOOM_CANVAS, FrontEndError, front_end_root
from cli.runtime import add_common_arguments, runtime_settings
from diffusion import offline
from engine.store import Store, StoreUnavailable
from runtime.build import Runtime, build_job_queue, build_runtime
from server.logs import LogRing
from server.security import all_loopback, listen_hosts
from server.state import ServerConfig, ServerState
from server.wire import history_messages

if TYPE_CHECKING:
    from scaleout.pool import RayWorkerPool

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
    parser.add_argument(
        "--preview-method",
        choices=("none", "auto", "latent2rgb"),
        default=None,
        help="send sampling previews to every client (default: only to front ends that ask for them); none: to no one",
    )
    parser.add_argument(
        "--front-end",
        choices=("loom", "comfyui"),
        default="loom",
        help="the front end served at / : Loom's canvas (default) or ComfyUI's (pip install comfyui-frontend-package)",
    )
    parser.add_argument(
        "--front-end-root", type=Path, default=None, metavar="PATH", help="serve the static front end in PATH at /"
    )
    parser.add_argument(
        "--multi-user", action="store_true", help="one user folder per user, chosen by the Comfy-User header"
    )
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


def build_state(args: argparse.Namespace, logs: LogRing | None = None) -> ServerState:
    """Runtime, store, runner and queue from the flags; the web UI and packs are served as they are found. `logs`:
    the ring already collecting this process's log lines (a fresh one when None)."""
    web_root = front_end_root(args.front_end, args.front_end_root)  # before anything loads: a wrong flag fails fast
    runtime = build_runtime(runtime_settings(args))
    store = Store(args.database or runtime.folders.user / "loom.db", history_cap=args.history_size)
    pool = start_pool(args, runtime) if args.workers == "ray" else None
    jobs = build_job_queue(runtime, store, history_messages, pool, workers=pool.size if pool is not None else 1)
    config = ServerConfig(
        host=args.listen,
        port=args.port,
        auth_token=args.auth_token,
        max_upload_bytes=int(args.max_upload_size * 1024 * 1024),
        web_root=web_root,
        multi_user=args.multi_user,
        preview_method=args.preview_method,
    )
    return ServerState(
        config,
        runtime.registry,
        runtime.folders,
        jobs,
        runtime.env,
        runtime.extensions,
        packs=runtime.pack_summaries,
        workers=pool,
        models=runtime.models,
        logs=logs or LogRing(),
    )


def start_pool(args: argparse.Namespace, runtime: Runtime) -> RayWorkerPool:
    """The Ray worker pool, started; imported here so that single-process Loom never loads Ray."""
    from scaleout.pool import PoolConfig, RayWorkerPool

    config = PoolConfig(runtime.settings, address=args.ray_address, workers_per_node=args.workers_per_node)
    pool = RayWorkerPool(config, runtime.registry, runtime.folders)
    pool.start()
    return pool


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
    logs = LogRing()  # from the start, so a front end's logs panel shows start-up too
    logging.getLogger().addHandler(logs)
    warning = exposure_warning(args.listen, args.auth_token)
    if warning:
        log.warning(warning)
    try:
        state = build_state(args, logs)
    except (StoreUnavailable, FrontEndError) as exc:
        print(f"Loom: {exc}", file=sys.stderr, flush=True)
        return 2
    if state.config.web_root != LOOM_CANVAS:
        log.info("serving the front end in %s", state.config.web_root)
    hosts = listen_hosts(args.listen)
    url_host = "127.0.0.1" if hosts[0] in ("0.0.0.0", "::") else hosts[0]
    print(f"Loom: serving on http://{url_host}:{args.port}", flush=True)
    if state.workers is None:  # jobs run here: import the model layer while the server waits for its first one
        offline.warm_up_in_background(state.activity.wait_quiet)
    try:
        web.run_app(create_app(state), host=hosts, port=args.port, print=None, access_log=None)
    finally:
        if state.workers is not None:
            state.workers.close()
    return 0
