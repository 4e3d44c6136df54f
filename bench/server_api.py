"""Server API figures: start-up to the first 200 from /object_info, /prompt round trip of a fully cached workflow,
jobs/s for trivial workflows from 10 concurrent clients, status fan-out to 100 sockets, idle RSS.

    .venv/bin/python bench/server_api.py [--jobs 200] [--clients 10] [--sockets 100]

Starts `python main.py` on a free port with a throw-away base directory holding a tiny node pack (trivial nodes, so
the figures measure the server and the queue, not a model).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent

PACK = """
from engine.native import Int, Socket, node


@node(category="bench", outputs=["INT"])
def BenchNumber(value: int = Int(0, min=0, max=1 << 30)) -> int:
    return value


@node(category="bench", output_node=True)
def BenchShow(value: int = Socket("INT")) -> dict:
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
    proc = subprocess.Popen(
        [sys.executable, "main.py", "--port", str(port), "--base-directory", str(base)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--sockets", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "custom_nodes" / "bench_nodes").mkdir(parents=True)
        (base / "custom_nodes" / "bench_nodes" / "__init__.py").write_text(PACK)
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


if __name__ == "__main__":
    main()
