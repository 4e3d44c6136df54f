"""A history write that fails never leaves the job running nor runs it again: the entry is checked before the write,
retried, replaced by a minimal error entry, and a job that ran is recorded (not re-run) after a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from engine.jobs import JobQueue
from engine.store import Store
from engine.workflow import Workflow, parse_api
from tests.engine.test_jobs import make_queue
from tests.engine.test_worker import finished
from tests.polling import wait_for


class FailingStore(Store):
    """Fails history writes as a full disk does: `failures` more times, or always for entries over `room` bytes."""

    def __init__(self, path: Path, failures: int = 0, room: int | None = None) -> None:
        super().__init__(path)
        self.failures, self.room, self.tries = failures, room, 0

    def finish_encoded(self, prompt_id: str, entry: str) -> None:
        self.tries += 1
        if self.failures > 0 or (self.room is not None and len(entry) > self.room):
            self.failures -= 1
            raise sqlite3.OperationalError("database or disk is full")
        super().finish_encoded(prompt_id, entry)


def logged(log: Path, tail: dict[str, Any], value: int = 7) -> Workflow:
    """A job whose run is logged (one line a run) and whose output node is `tail`."""
    return parse_api(
        {
            "1": {"class_type": "TestNumber", "inputs": {"value": value}},
            "2": {"class_type": "TestWaitFile", "inputs": {"value": ["1", 0], "path": "", "log": str(log)}},
            "3": {**tail, "inputs": {"value": ["2", 0], **tail.get("inputs", {})}},
            "4": {"class_type": "TestShow", "inputs": {"value": ["2", 0]}},
        }
    )


def queue_on(tmp_path: Path, store: Store) -> JobQueue:
    q, _ = make_queue(tmp_path / "folders")
    q.store.close()
    q.store = store
    q.history.store = store
    q.history.delays = (0.0, 0.0, 0.0)
    return q


def test_outputs_json_cannot_hold_are_dropped_and_the_job_is_an_error(tmp_path: Path) -> None:
    log = tmp_path / "ran.log"
    q, _ = make_queue(tmp_path)
    q.start()
    try:
        job = q.submit(logged(log, {"class_type": "TestBadUi"}), ["3", "4"])
        entry = finished(q, job.prompt_id)
        after = q.submit(logged(log, {"class_type": "TestShow"}, 8), ["3"])
        assert finished(q, after.prompt_id)["status"]["completed"]
    finally:
        q.stop()
    assert entry["status"]["status_str"] == "error"
    assert entry["outputs"] == {"4": {"text": ["7"]}}  # the other node's output is kept
    kind, error = entry["status"]["messages"][-1]
    assert kind == "execution_error" and error["exception_type"] == "OutputNotSerializable"
    assert "node 3" in error["exception_message"]
    assert q.store.running_jobs() == [] and log.read_text().split() == [job.prompt_id, after.prompt_id]


def one_job(tmp_path: Path, store: Store) -> dict[str, Any]:
    """The history entry of one job run by a queue on `store`."""
    q = queue_on(tmp_path, store)
    q.start()
    try:
        job = q.submit(logged(tmp_path / "ran.log", {"class_type": "TestShow"}), ["3"])
        return finished(q, job.prompt_id)
    finally:
        q.stop()


def test_a_failing_write_is_retried(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "jobs.db", failures=2)
    entry = one_job(tmp_path, store)
    assert entry["status"]["completed"] and entry["outputs"] == {"3": {"text": ["7"]}}
    assert store.tries == 3


def test_an_entry_that_never_fits_becomes_a_minimal_error_entry(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "jobs.db", room=5000)
    q = queue_on(tmp_path, store)
    q.start()
    try:
        big = q.submit(logged(tmp_path / "ran.log", {"class_type": "TestBigText", "inputs": {"size": 20_000}}), ["3"])
        entry = finished(q, big.prompt_id)
        small = q.submit(logged(tmp_path / "ran.log", {"class_type": "TestShow"}), ["3"])
        assert finished(q, small.prompt_id)["status"]["completed"]  # the queue goes on
    finally:
        q.stop()
    assert entry["status"]["status_str"] == "error" and entry["outputs"] == {}
    error = entry["status"]["messages"][-1][1]
    assert error["exception_type"] == "HistoryWriteFailed" and "disk is full" in error["exception_message"]
    assert entry["prompt"][1] == big.prompt_id and q.store.jobs() == []


def test_a_job_that_ran_is_recorded_not_run_again_after_a_restart(tmp_path: Path) -> None:
    log = tmp_path / "ran.log"
    store = FailingStore(tmp_path / "jobs.db", failures=10**6)  # nothing reaches the history
    q = queue_on(tmp_path, store)
    q.start()
    try:
        job = q.submit(logged(log, {"class_type": "TestShow"}), ["3"])
        second = q.submit(logged(log, {"class_type": "TestShow"}, 8), ["3"])
        wait_for(lambda: [j.state for j in store.jobs()] == ["ran", "ran"])
        assert q.queue() == ([], []) and q.remaining() == 0  # neither shows as running or waiting
    finally:
        q.stop()
    store.close()

    q, _ = make_queue(tmp_path)  # a new process on the same database, whose writes work again
    q.start()
    try:
        entries = [finished(q, i) for i in (job.prompt_id, second.prompt_id)]
    finally:
        q.stop()
    assert log.read_text().split() == [job.prompt_id, second.prompt_id]  # each ran once, never again
    for entry in entries:
        error = entry["status"]["messages"][-1][1]
        assert entry["status"]["status_str"] == "error" and "ran before Loom stopped" in error["exception_message"]


def test_a_minimal_entry_that_could_not_be_written_is_written_between_jobs(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "jobs.db", failures=5)  # the first try, three retries and the minimal entry
    entry = one_job(tmp_path, store)
    assert entry["status"]["messages"][-1][1]["exception_type"] == "HistoryWriteFailed"
    assert store.tries == 6 and store.jobs() == []
