"""Faults met by a real server process: a second server on the same database, a damaged database, a full disk,
a history write that fails."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.polling import wait_for
from tests.server.test_crash import CHILD_WAIT, ROOT, Child, free_port


def refused(base: Path) -> subprocess.CompletedProcess[str]:
    """A server started on `base` that must refuse to start."""
    command = [sys.executable, "main.py", "--port", str(free_port()), "--base-directory", str(base)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    return done


@pytest.mark.slow
def test_a_second_server_on_the_same_database_refuses_naming_the_first(tmp_path: Path) -> None:
    first = Child(tmp_path)
    try:
        done = refused(tmp_path)
        assert f"pid {first.proc.pid}" in done.stderr and "--database" in done.stderr
        assert "Traceback" not in done.stderr
        assert first.get("/queue") == {"queue_running": [], "queue_pending": []}  # the first one is untouched
    finally:
        first.stop()


@pytest.mark.slow
def test_a_damaged_database_stops_start_up_with_one_line(tmp_path: Path) -> None:
    database = tmp_path / "user" / "loom.db"
    database.parent.mkdir(parents=True)
    database.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    done = refused(tmp_path)
    lines = [line for line in done.stderr.splitlines() if "Loom:" in line]
    assert len(lines) == 1 and str(database) in lines[0] and "move it aside" in lines[0]
    assert "Traceback" not in done.stderr
    assert database.read_bytes().startswith(b"SQLite format 3\x00\xff")  # left as it was for the creator to inspect


@pytest.mark.slow
def test_an_empty_database_file_starts_fresh_and_says_so(tmp_path: Path) -> None:
    database = tmp_path / "user" / "loom.db"
    database.parent.mkdir(parents=True)
    database.touch()
    child = Child(tmp_path)
    child.stop(signal.SIGTERM)
    assert "empty file; starting a new database" in (tmp_path / "server.log").read_text()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a disk that really fills up (needs root; elsewhere tests/engine/test_recording.py covers the
    same paths with a fault-injecting store)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """Fill `disk` up, then give back `leave` bytes."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while f.write(b"\0" * 4096):
                pass
        except OSError:
            pass
    with filler.open("r+b") as f:
        f.truncate(max(filler.stat().st_size - leave, 0))
    return filler


def with_test_pack(base: Path) -> None:
    pack = base / "custom_nodes" / "loom_test_nodes"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text("from tests.testnodes import *  # noqa: F403\n")


def writing(size: int, value: int, node: str = "TestWriteOutput", log: Path | None = None) -> dict[str, Any]:
    return {
        "1": {"class_type": "TestNumber", "inputs": {"value": value}},
        "2": {"class_type": "TestWaitFile", "inputs": {"value": ["1", 0], "path": "", "log": str(log or "")}},
        "3": {"class_type": node, "inputs": {"value": ["2", 0], "size": size}},
    }


@pytest.mark.slow
def test_a_full_disk_leaves_no_empty_output_files(tmp_path: Path, tiny_disk: Path) -> None:
    with_test_pack(tmp_path)
    child = Child(tmp_path, "--output-directory", str(tiny_disk))
    try:
        filler = fill(tiny_disk, leave=0)
        failed = child.post("/prompt", {"prompt": writing(200_000, 1)})["prompt_id"]
        wait_for(lambda: child.get(f"/history/{failed}"), **CHILD_WAIT)
        assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]  # nothing empty or half-written
        error = child.get(f"/history/{failed}")[failed]["status"]["messages"][-1][1]
        assert error["node_id"] == "3" and "No space left" in error["exception_message"]
        filler.unlink()
        done = child.post("/prompt", {"prompt": writing(200_000, 2)})["prompt_id"]
        wait_for(lambda: child.get(f"/history/{done}"), **CHILD_WAIT)
        (written,) = tiny_disk.iterdir()
        assert written.stat().st_size == 200_000
    finally:
        child.stop()


@pytest.mark.slow
def test_a_full_disk_under_the_database_records_the_job_once(tmp_path: Path, tiny_disk: Path) -> None:
    with_test_pack(tmp_path)
    log = tmp_path / "ran.log"
    database = ["--database", str(tiny_disk / "loom.db")]
    child = Child(tmp_path, *database)
    try:
        filler = fill(tiny_disk, leave=96 * 1024)
        big = child.post("/prompt", {"prompt": writing(400_000, 1, "TestBigText", log)})["prompt_id"]
        wait_for(lambda: child.get(f"/history/{big}"), **CHILD_WAIT)  # after the retries: a minimal error entry
        entry = child.get(f"/history/{big}")[big]
        assert entry["status"]["status_str"] == "error" and entry["outputs"] == {}
        assert "could not be written" in entry["status"]["messages"][-1][1]["exception_message"]
        assert child.get("/queue") == {"queue_running": [], "queue_pending": []}
    finally:
        child.stop(signal.SIGKILL)
    filler.unlink()
    child = Child(tmp_path, *database)
    try:
        small = child.post("/prompt", {"prompt": writing(10, 2, "TestBigText", log)})["prompt_id"]
        wait_for(lambda: child.get(f"/history/{small}"), **CHILD_WAIT)
        assert child.get(f"/history/{big}")[big]["status"]["status_str"] == "error"
    finally:
        child.stop()
    assert log.read_text().split() == [big, small]  # the big job ran once, not again after the restart


def rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's RSS from /proc")
def test_free_gives_model_memory_back(tmp_path: Path) -> None:
    with_test_pack(tmp_path)
    child = Child(tmp_path, "--cpu")
    try:
        model = {
            "1": {"class_type": "TestLoadBigModel", "inputs": {"megabytes": 300}},
            "2": {"class_type": "TestUseModel", "inputs": {"model": ["1", 0]}},
        }
        done = child.post("/prompt", {"prompt": model})["prompt_id"]
        wait_for(lambda: child.get(f"/history/{done}"), **CHILD_WAIT)
        loaded = rss_mb(child.proc.pid)
        child.post("/free", {"unload_models": True, "free_memory": True})
        wait_for(lambda: rss_mb(child.proc.pid) < loaded - 250, **CHILD_WAIT)  # the 300 MB model is given back
    finally:
        child.stop()
