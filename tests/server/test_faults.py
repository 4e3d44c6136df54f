"""Faults met by a real server process: a second server on the same database, a damaged database, a full disk,
a history write that fails."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.test_crash import ROOT, Child, free_port


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
