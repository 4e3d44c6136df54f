"""Server API figures: start-up to the first 200 from /object_info, /prompt round trip of a fully cached workflow,
jobs/s for trivial workflows from 10 concurrent clients, status fan-out to 100 sockets, idle RSS.

    .venv/bin/python bench/server_api.py [--jobs 200] [--clients 10] [--sockets 100]
    .venv/bin/python bench/server_api.py --soak 1000 [--kills 3] [--seed 1]

`--soak N` runs the reliability soak instead: N cheap jobs queued with random interrupts and deletes while the server
is killed with SIGKILL and restarted `--kills` times; it reports lost jobs (accepted, not deleted, never in the
history), duplicated jobs (run more than once, other than the one retry of the job a kill cut short) and the
server's RSS growth per job. Lost and duplicated must both be 0.

Starts `python main.py` on a free port with a throw-away base directory holding a tiny node pack (trivial nodes, so
the figures measure the server and the queue, not a model).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent

PACK = """
import time

from engine.context import NodeContext
from engine.native import Int, Socket, String, node


@node(category="bench", outputs=["INT"])
def BenchNumber(value: int = Int(0, min=0, max=1 << 30)) -> int:
    return value


@node(category="bench", output_node=True)
def BenchShow(value: int = Socket("INT")) -> dict:
    return {"ui": {"text": [str(value)]}}


@node(category="bench", output_node=True)
def BenchLogged(
    ctx: NodeContext,
    value: int = Int(0, min=0, max=1 << 30),
    log: str = String(""),
    ms: int = Int(0, min=0, max=10000),
) -> dict:
    # notes each run of its job in `log`, then works for `ms` milliseconds, looking at the interrupt flag
    with open(log, "a") as f:
        f.write(ctx.prompt_id + "\\n")
    deadline = time.monotonic() + ms / 1000
    while time.monotonic() < deadline:
        ctx.check_interrupt()
        time.sleep(0.002)
    return {"ui": {"text": [str(value)]}}
"""


def workflow(value: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "BenchNumber", "inputs": {"value": value}},
        "2": {"class_type": "BenchShow", "inputs": {"value": ["1", 0]}},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(base: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    with (base / "server.log").open("ab") as log:  # kept for a failing run's post-mortem
        proc = subprocess.Popen(
            [sys.executable, "main.py", "--port", str(port), "--base-directory", str(base)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    while True:
        try:
            with urllib.request.urlopen(url + "/object_info", timeout=5) as r:
                if r.status == 200:
                    return proc, url, time.perf_counter() - t0
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the server exited during start-up") from None
            time.sleep(0.005)


async def run_job(http: aiohttp.ClientSession, ws: Any, url: str, client_id: str, value: int) -> float:
    t0 = time.perf_counter()
    async with http.post(url + "/prompt", json={"prompt": workflow(value), "client_id": client_id}) as r:
        prompt_id = (await r.json())["prompt_id"]
    async for msg in ws:
        if msg.type != aiohttp.WSMsgType.TEXT:
            continue
        data = json.loads(msg.data)
        if data["type"] == "executing" and data["data"]["node"] is None and data["data"]["prompt_id"] == prompt_id:
            return time.perf_counter() - t0
    raise RuntimeError("socket closed")


async def cached_round_trip(url: str, rounds: int) -> list[float]:
    async with aiohttp.ClientSession() as http, http.ws_connect(url + "/ws?clientId=rt") as ws:
        await run_job(http, ws, url, "rt", 7)  # fills the cache
        return [await run_job(http, ws, url, "rt", 7) for _ in range(rounds)]


async def throughput(url: str, clients: int, jobs: int) -> float:
    per_client = max(jobs // clients, 1)

    async def client(index: int) -> None:
        cid = f"tp{index}"
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/ws?clientId={cid}") as ws:
            for n in range(per_client):
                await run_job(http, ws, url, cid, 1000 + index * per_client + n)  # distinct: every job runs

    t0 = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return clients * per_client / (time.perf_counter() - t0)


async def _status_after(ws: Any, t0: float) -> float:
    while True:
        msg = await ws.receive()
        if json.loads(msg.data)["type"] == "status":
            return time.perf_counter() - t0


async def fan_out(url: str, sockets: int, rounds: int) -> list[float]:
    """Time from a queue change (POST /prompt) until every connected socket has its `status` message."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:  # default caps at 100
        conns = [await http.ws_connect(f"{url}/ws?clientId=fan{i}") for i in range(sockets)]
        for ws in conns:
            await ws.receive()  # the greeting status
        times = []
        for r in range(rounds):
            t0 = time.perf_counter()

            waiters = [asyncio.ensure_future(_status_after(ws, t0)) for ws in conns]
            async with http.post(url + "/prompt", json={"prompt": workflow(5_000_000 + r), "client_id": "x"}) as resp:
                await resp.read()
            times.append(max(await asyncio.gather(*waiters)))
            await asyncio.sleep(0.2)  # let this job's remaining status messages pass
            for ws in conns:
                while True:
                    try:
                        await asyncio.wait_for(ws.receive(), 0.001)
                    except TimeoutError:
                        break
        for ws in conns:
            await ws.close()
        return times


def _call(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            raw = r.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url}{path}: {exc.code} {exc.read().decode()[:500]}") from None
    return json.loads(raw) if raw else None


@dataclass
class SoakResult:
    accepted: int
    deleted: int
    interrupted: int
    retried: int
    lost: list[str]
    duplicated: list[str]
    rss_per_job: float


def soak(base: Path, jobs: int, kills: int, seed: int) -> SoakResult:
    """Queue `jobs` logged jobs with random interrupts and deletes, killing (SIGKILL) and restarting the server
    `kills` times along the way, then check every job against the history and the nodes' run log."""
    rng = random.Random(seed)
    log = base / "runs.log"
    kill_at = {jobs * (k + 1) // (kills + 1) for k in range(kills)}
    asked_to_delete: set[str] = set()
    ids: list[str] = []
    proc, url, _ = start_server(base)
    segment_start: tuple[int, int] | None = None  # (jobs finished, RSS) once the last process has warmed up
    try:
        for n in range(jobs):
            if n in kill_at:
                _kill_while_running(url)
                proc.kill()
                proc.wait()
                proc, url, _ = start_server(base)
                segment_start = None
            prompt_id = f"soak-{n:05d}"
            inputs = {"value": n, "log": str(log), "ms": rng.randint(0, 8)}
            prompt = {"1": {"class_type": "BenchLogged", "inputs": inputs}}
            _call(url, "/prompt", {"prompt": prompt, "prompt_id": prompt_id})
            ids.append(prompt_id)
            roll = rng.random()
            if roll < 0.05:
                _call(url, "/interrupt", {})
            elif roll < 0.12:
                victim = rng.choice(ids[-20:])
                asked_to_delete.add(victim)
                _call(url, "/queue", {"delete": [victim]})
            if segment_start is None and n >= max(kill_at, default=0) + 50:
                segment_start = (n, psutil.Process(proc.pid).memory_info().rss)
        deadline = time.monotonic() + 600
        while _call(url, "/queue") != {"queue_running": [], "queue_pending": []}:
            if time.monotonic() > deadline:
                raise RuntimeError("the queue did not drain")
            time.sleep(0.2)
        end_rss = psutil.Process(proc.pid).memory_info().rss
        history = _call(url, "/history")
    finally:
        proc.terminate()
        proc.wait(30)
    runs = Counter(log.read_text().split())
    lost = [i for i in ids if i not in history and (i not in asked_to_delete or runs[i])]
    retried = {i for i, entry in history.items() if entry.get("retry")}
    duplicated = [i for i in ids if runs[i] > (2 if i in retried else 1)]
    interrupted = sum(1 for e in history.values() if e["status"]["messages"][-1][0] == "execution_interrupted")
    deleted = sum(1 for i in asked_to_delete if i not in history)
    first, start_rss = segment_start or (0, end_rss)
    per_job = (end_rss - start_rss) / max(jobs - first, 1)
    return SoakResult(len(ids), deleted, interrupted, len(retried), lost, duplicated, per_job)


def _kill_while_running(url: str) -> None:
    """Wait (briefly) until a job is running, so that the kill cuts one short."""
    deadline = time.monotonic() + 5
    while not _call(url, "/queue")["queue_running"] and time.monotonic() < deadline:
        time.sleep(0.001)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--sockets", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--soak", type=int, default=0, metavar="N", help="run the reliability soak with N jobs")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILL restarts during the soak")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "custom_nodes" / "bench_nodes").mkdir(parents=True)
        (base / "custom_nodes" / "bench_nodes" / "__init__.py").write_text(PACK)
        if args.soak:
            report_soak(soak(base, args.soak, args.kills, args.seed), args.kills)
            return
        proc, url, startup = start_server(base)
        try:
            time.sleep(1.0)
            idle_rss = psutil.Process(proc.pid).memory_info().rss
            print(f"start-up to first 200 from /object_info: {startup * 1000:.0f} ms")
            print(f"idle RSS after start-up: {idle_rss / 2**20:.1f} MiB")
            rt = asyncio.run(cached_round_trip(url, args.rounds))
            print(
                f"/prompt round trip, fully cached (POST to executing null), {args.rounds} rounds: "
                f"median {statistics.median(rt) * 1000:.1f} ms, p90 {sorted(rt)[int(len(rt) * 0.9)] * 1000:.1f} ms"
            )
            jps = asyncio.run(throughput(url, args.clients, args.jobs))
            print(f"trivial jobs from {args.clients} concurrent clients: {jps:.0f} jobs/s")
            fan = asyncio.run(fan_out(url, args.sockets, 10))
            print(
                f"status fan-out to {args.sockets} sockets: median {statistics.median(fan) * 1000:.1f} ms, "
                f"max {max(fan) * 1000:.1f} ms"
            )
            print(f"RSS after the runs: {psutil.Process(proc.pid).memory_info().rss / 2**20:.1f} MiB")
        finally:
            proc.terminate()
            proc.wait(30)


def report_soak(result: SoakResult, kills: int) -> None:
    print(
        f"soak: {result.accepted} jobs accepted, {kills} SIGKILL restarts, {result.deleted} deleted, "
        f"{result.interrupted} interrupted, {result.retried} retried after a kill"
    )
    print(f"lost jobs: {len(result.lost)} {result.lost[:10]}")
    print(f"duplicated jobs: {len(result.duplicated)} {result.duplicated[:10]}")
    print(f"RSS growth per job (last process, after warm-up): {result.rss_per_job / 1024:.2f} KiB")


if __name__ == "__main__":
    main()
