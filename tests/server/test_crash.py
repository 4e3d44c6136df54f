"""Nothing is lost when the process dies: SIGKILL a real server mid-run, restart it, every job completes once more.

The child loads the test nodes as a node pack from its base directory's custom_nodes/, as a user's pack would be.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
# The child server is a separate process answering over HTTP: give it longer and ask less often.
CHILD_WAIT = {"timeout": 60, "interval": 0.05}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Child:
    def __init__(self, base: Path, *args: str) -> None:
        self.base = base
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log = open(base / "server.log", "ab")  # noqa: SIM115 (lives as long as the process)
        self.proc = subprocess.Popen(
            [sys.executable, "main.py", "--port", str(self.port), "--base-directory", str(base), *args],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/object_info")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((base / "server.log").read_text()) from None
                time.sleep(0.1)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(self.url + path, json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as r:
            data = r.read()
        return json.loads(data) if data else None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(30)


def job(value: int, log: Path, gate: Path | None = None) -> dict[str, Any]:
    return {
        "1": {"class_type": "TestNumber", "inputs": {"value": value}},
        "2": {"class_type": "TestWaitFile", "inputs": {"value": ["1", 0], "path": str(gate or ""), "log": str(log)}},
        "3": {"class_type": "TestShow", "inputs": {"value": ["2", 0]}},
    }


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / "engine" / "packs.py").exists(), reason="needs the node-pack loader (engine/packs.py)")
def test_sigkill_mid_run_then_restart_completes_every_job_once(tmp_path: Path) -> None:
    pack = tmp_path / "custom_nodes" / "loom_test_nodes"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text("from tests.testnodes import *  # noqa: F403\n")
    log, gate = tmp_path / "ran.log", tmp_path / "gate"

    child = Child(tmp_path)
    try:
        done = child.post("/prompt", {"prompt": job(100, log)})["prompt_id"]
        wait_for(lambda: child.get(f"/history/{done}"), **CHILD_WAIT)
        ids = [child.post("/prompt", {"prompt": job(0, log, gate)})["prompt_id"]]
        ids += [child.post("/prompt", {"prompt": job(i, log)})["prompt_id"] for i in (1, 2, 3)]
        wait_for(lambda: log.exists() and ids[0] in log.read_text(), **CHILD_WAIT)  # the first job is inside its node
        assert len(child.get("/queue")["queue_pending"]) == 3
    finally:
        child.stop(signal.SIGKILL)

    gate.touch()
    child = Child(tmp_path)
    try:
        wait_for(lambda: all(child.get(f"/history/{i}") for i in ids), **CHILD_WAIT)
        history = child.get("/history")
        queue = child.get("/queue")
    finally:
        child.stop()

    runs = log.read_text().split()
    assert runs == [done, ids[0], ids[0], ids[1], ids[2], ids[3]]  # the interrupted job once more, the rest once
    assert list(history) == [done, *ids]
    assert all(entry["status"]["completed"] for entry in history.values())
    assert [history[i]["retry"] for i in ids] == [True, False, False, False]
    assert history[done]["outputs"] == {"3": {"text": ["100"]}}
    assert [history[i]["outputs"] for i in ids] == [{"3": {"text": [str(v)]}} for v in range(4)]
    assert queue == {"queue_running": [], "queue_pending": []}
