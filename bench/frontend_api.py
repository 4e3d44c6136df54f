"""Front-end API figures: median milliseconds of the calls a front end makes while a creator works, against a real
`python main.py` on a throw-away base directory.

    .venv/bin/python bench/frontend_api.py [--workflows 300] [--models 200] [--repeat 30]

Saved workflows (`--workflows` files of ~20 KB in user/default/workflows/) and model files (`--models` empty
.safetensors in models/loras/) are written first, so the listings have something to list.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(base: Path, workflows: int, models: int) -> None:
    saved = base / "user" / "default" / "workflows"
    saved.mkdir(parents=True)
    example = (ROOT / "workflows" / "txt2img.json").read_text()
    padding = " " * max(0, 20_000 - len(example))
    for i in range(workflows):
        (saved / f"workflow {i:04d}.json").write_text(example + padding)
    loras = base / "models" / "loras"
    loras.mkdir(parents=True)
    header = json.dumps({"__metadata__": {"ss_network_dim": "4"}}).encode()
    for i in range(models):
        (loras / f"lora_{i:04d}.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)


async def median_ms(call: Callable[[], Awaitable[None]], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def measure(url: str, repeat: int) -> dict[str, float]:
    canvas = json.loads((ROOT / "workflows" / "txt2img.json").read_text())
    body = json.dumps(canvas).encode()
    async with aiohttp.ClientSession() as http:

        def call(method: str, path: str, **kw: object) -> Callable[[], Awaitable[None]]:
            async def go() -> None:
                async with http.request(method, url + path, **kw) as r:
                    assert r.status < 300, (path, r.status, await r.text())
                    await r.read()

            return go

        return {
            "GET /userdata (workflows, full_info)": await median_ms(
                call("GET", "/api/userdata?dir=workflows&recurse=true&split=false&full_info=true"), repeat
            ),
            "POST /userdata (20 KB workflow)": await median_ms(
                call("POST", f"/api/userdata/{quote('workflows/bench.json', safe='')}?full_info=true", data=body),
                repeat,
            ),
            "GET /userdata/{file}": await median_ms(
                call("GET", f"/api/userdata/{quote('workflows/workflow 0001.json', safe='')}"), repeat
            ),
            "POST /settings/{id}": await median_ms(
                call("POST", "/api/settings/Comfy.Bench", data=json.dumps(time.time())), repeat
            ),
            "GET /settings": await median_ms(call("GET", "/api/settings"), repeat),
            "GET /experiment/models/loras": await median_ms(call("GET", "/api/experiment/models/loras"), repeat),
            "GET /view_metadata/loras": await median_ms(
                call("GET", "/api/view_metadata/loras?filename=lora_0001.safetensors"), repeat
            ),
            "GET /templates/index.json": await median_ms(call("GET", "/templates/index.json"), repeat),
            "POST /workflow/convert (txt2img)": await median_ms(
                call("POST", "/api/workflow/convert", data=body), repeat
            ),
            "GET /internal/logs/raw": await median_ms(call("GET", "/internal/logs/raw"), repeat),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=300)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        prepare(base, args.workflows, args.models)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [sys.executable, "main.py", "--port", str(port), "--base-directory", str(base), "--disable-custom-nodes"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("the server did not start") from None
                    time.sleep(0.2)
            figures = asyncio.run(measure(url, args.repeat))
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    print(f"front-end API, median of {args.repeat} ({args.workflows} saved workflows, {args.models} LoRA files):")
    for name, ms in figures.items():
        print(f"  {name:40s} {ms:7.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
