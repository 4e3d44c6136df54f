"""The job worker never dies: a node's SystemExit or KeyboardInterrupt is a job error, and should the worker loop
die anyway it is restarted; a job that killed it twice is failed, not run a third time."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from engine.events import Event
from engine.jobs import JobQueue
from engine.workflow import parse_api
from tests.engine.test_jobs import flow, make_queue
from tests.polling import wait_for


def aborting(kind: str, node: str = "TestAbort") -> dict[str, Any]:
    return {
        "1": {"class_type": "TestNumber", "inputs": {"value": 5}},
        "2": {"class_type": node, "inputs": {"value": ["1", 0], "kind": kind}},
        "3": {"class_type": "TestShow", "inputs": {"value": ["2", 0]}},
    }


def finished(q: JobQueue, prompt_id: str) -> dict[str, Any]:
    wait_for(lambda: q.store.history_entry(prompt_id) is not None)
    entry = q.store.history_entry(prompt_id)
    assert entry is not None
    return entry


@pytest.mark.parametrize("node", ["TestAbort", "TestAbortAsync"])
@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt"])
def test_a_nodes_base_exception_is_a_job_error(tmp_path: Path, kind: str, node: str) -> None:
    q, _ = make_queue(tmp_path)
    q.start()
    try:
        bad = q.submit(parse_api(aborting(kind, node)), ["3"])
        good = q.submit(parse_api(flow(3)), ["3"])
        entry = finished(q, bad.prompt_id)
        assert entry["status"]["status_str"] == "error"
        error = entry["status"]["messages"][-1]
        assert error[0] == "execution_error"
        assert error[1]["exception_type"] == kind and error[1]["node_id"] == "2"
        assert finished(q, good.prompt_id)["status"]["completed"]  # the queue goes on
        assert q.store.running_jobs() == []
    finally:
        q.stop()


class Killer:
    """A listener that raises SystemExit out of the worker loop whenever the poisoned job is about to run."""

    def __init__(self, q: JobQueue, poisoned: str) -> None:
        self.q, self.poisoned, self.kills = q, poisoned, 0

    def job_event(self, client_id: str | None, event: Event) -> None:
        pass

    def queue_changed(self, remaining: int) -> None:
        running = self.q.running()
        if running is not None and running.job.prompt_id == self.poisoned and running.node is None:
            self.kills += 1
            raise SystemExit("the worker loop dies")


def test_a_dead_worker_loop_restarts_and_a_job_that_killed_it_twice_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    q, _ = make_queue(tmp_path)
    poisoned = q.submit(parse_api(flow(1)), ["3"])
    killer = Killer(q, poisoned.prompt_id)
    q.add_listener(killer)
    with caplog.at_level(logging.CRITICAL, logger="loom.jobs"):
        q.start()
        try:
            entry = finished(q, poisoned.prompt_id)
            after = q.submit(parse_api(flow(2)), ["3"])
            assert finished(q, after.prompt_id)["status"]["completed"]  # the restarted worker runs the next job
        finally:
            q.stop()
    assert killer.kills == 2  # the first run and one retry, never a third
    assert entry["status"]["status_str"] == "error" and entry["attempts"] == 2
    error = entry["status"]["messages"][-1][1]
    assert error["exception_type"] == "WorkerLost" and "worker died" in error["exception_message"]
    assert sum("restarting it" in r.getMessage() for r in caplog.records) == 2
    assert q.store.running_jobs() == []


def test_an_interrupt_a_node_ignores_is_recorded_as_interrupted(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    q, _ = make_queue(tmp_path)
    q.start()
    try:
        job = q.submit(
            parse_api(
                {
                    "1": {"class_type": "TestNumber", "inputs": {"value": 4}},
                    "2": {"class_type": "TestWaitDeaf", "inputs": {"value": ["1", 0], "path": str(gate)}},
                }
            ),
            ["2"],  # the deaf node is the last to run: no later node sees the flag
        )
        wait_for(lambda: _at(q, "2"))
        assert q.interrupt(job.prompt_id)
        gate.touch()  # the node ends normally, never having looked at the flag
        entry = finished(q, job.prompt_id)
    finally:
        q.stop()
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"


def _at(q: JobQueue, node: str) -> bool:
    running = q.running()
    return running is not None and running.node == node
