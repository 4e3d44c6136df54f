"""The job queue with the real executor and store: events, history, resume after a crash, interrupt, free."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import tests.testnodes as testnodes
from engine.environment import NodeEnvironment
from engine.events import Event, JobSucceeded, NodeExecuted, NodeExecuting, NodesCached
from engine.executor import Executor
from engine.folders import Folders
from engine.jobs import JobQueue
from engine.registry import NodeRegistry
from engine.store import Job, Store
from engine.workflow import parse_api
from server.wire import history_messages
from tests.polling import wait_for


class Recorder:
    """A JobListener that keeps everything it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[str | None, Event]] = []
        self.remaining: list[int] = []
        self.lock = threading.Lock()

    def job_event(self, client_id: str | None, event: Event) -> None:
        with self.lock:
            self.events.append((client_id, event))

    def queue_changed(self, remaining: int) -> None:
        self.remaining.append(remaining)


def make_queue(tmp: Path) -> tuple[JobQueue, Recorder]:
    folders = Folders.under(tmp)
    folders.ensure()
    env = NodeEnvironment(folders)
    registry = NodeRegistry(env)
    registry.add_module(testnodes)
    queue = JobQueue(Store(tmp / "jobs.db"), Executor(registry, env=env), history_messages, env)
    recorder = Recorder()
    queue.add_listener(recorder)
    return queue, recorder


def flow(value: int, gate: Path | None = None, log: Path | None = None) -> dict[str, Any]:
    inputs: dict[str, Any] = {"value": ["1", 0], "path": str(gate or ""), "log": str(log or "")}
    return {
        "1": {"class_type": "TestNumber", "inputs": {"value": value}},
        "2": {"class_type": "TestWaitFile", "inputs": inputs},
        "3": {"class_type": "TestSaveImage", "inputs": {"value": ["2", 0], "prefix": "j"}},
    }


@pytest.fixture
def queue(tmp_path: Path) -> Any:
    q, recorder = make_queue(tmp_path)
    q.start()
    yield q, recorder
    q.stop()


def test_runs_records_history_and_tells_listeners(queue: Any) -> None:
    q, recorder = queue
    job = q.submit(parse_api(flow(4)), ["3"], client_id="c1", extra_data={"extra_pnginfo": {"workflow": {}}})
    wait_for(lambda: q.store.history_entry(job.prompt_id) is not None)
    entry = q.store.history_entry(job.prompt_id)
    assert entry["prompt"] == [job.number, job.prompt_id, flow(4), {"extra_pnginfo": {"workflow": {}}}, ["3"]]
    assert entry["outputs"]["3"]["images"][0]["filename"] == "j_00004.png"
    assert entry["status"]["completed"] and entry["retry"] is False and entry["attempts"] == 1
    assert entry["timings"]["queued"] <= entry["timings"]["started"] <= entry["timings"]["finished"]
    events = [e for c, e in recorder.events if c == "c1"]
    assert len(events) == len(recorder.events)
    assert isinstance(events[-1], JobSucceeded)
    assert [e.node for e in events if isinstance(e, NodeExecuting)] == ["1", "2", "3"]
    wait_for(lambda: recorder.remaining[-1] == 0)  # told after the history entry is written
    assert recorder.remaining[0] == 1


def test_interrupt_delete_clear(queue: Any, tmp_path: Path) -> None:
    q, _ = queue
    gate = tmp_path / "gate"
    first = q.submit(parse_api(flow(1, gate)), ["3"])
    wait_for(lambda: q.running() is not None and q.running().node == "2")
    others = [q.submit(parse_api(flow(i)), ["3"]) for i in (2, 3, 4)]
    assert q.delete([others[0].prompt_id]) == [others[0].prompt_id]
    assert q.interrupt("not-this-one") is False
    assert q.clear() == 2
    assert q.interrupt(first.prompt_id) is True
    wait_for(lambda: q.store.history_entry(first.prompt_id) is not None)
    entry = q.store.history_entry(first.prompt_id)
    assert entry["status"]["completed"] is False and entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert q.remaining() == 0 and all(q.store.history_entry(o.prompt_id) is None for o in others)


def test_free_drops_cached_outputs(queue: Any) -> None:
    q, recorder = queue
    for expect_cached in (False, True):
        job = q.submit(parse_api(flow(9)), ["3"])
        wait_for(lambda job=job: q.store.history_entry(job.prompt_id) is not None)
        cached = next(e for _, e in recorder.events if isinstance(e, NodesCached) and e.prompt_id == job.prompt_id)
        assert bool(cached.nodes) is expect_cached
    q.request_free(unload_models=False, free_memory=True)
    job = q.submit(parse_api(flow(9)), ["3"])
    wait_for(lambda: q.store.history_entry(job.prompt_id) is not None)
    cached = next(e for _, e in recorder.events if isinstance(e, NodesCached) and e.prompt_id == job.prompt_id)
    assert cached.nodes == ()
    assert any(isinstance(e, NodeExecuted) and e.prompt_id == job.prompt_id for _, e in recorder.events)


def test_resume_runs_pending_in_order_and_retries_the_running_job(tmp_path: Path) -> None:
    log = tmp_path / "ran.log"
    store = Store(tmp_path / "jobs.db")
    ids = []
    for i in range(4):
        ids.append(store.add_job(Job(f"p{i}", 0, parse_api(flow(i, log=log)), outputs=["3"])).prompt_id)
    store.start_next()  # p0 was running when the process died
    store.close()

    q, _ = make_queue(tmp_path)
    q.start()
    try:
        wait_for(lambda: all(q.store.history_entry(i) is not None for i in ids))
    finally:
        q.stop()
    assert log.read_text().split() == ids
    entries = [q.store.history_entry(i) for i in ids]
    assert [e["retry"] for e in entries] == [True, False, False, False]
    assert entries[0]["attempts"] == 2 and all(e["status"]["completed"] for e in entries)


def test_second_death_while_retrying_is_an_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "jobs.db")
    store.add_job(Job("p0", 0, parse_api(flow(0)), outputs=["3"]))
    store.start_next()
    store.requeue("p0")
    store.start_next()  # died again during the retry
    store.close()
    q, recorder = make_queue(tmp_path)
    q.start()
    q.stop()
    entry = q.store.history_entry("p0")
    assert entry["status"]["status_str"] == "error" and entry["retry"] is True
    assert entry["status"]["messages"][0][0] == "execution_error"
    assert q.remaining() == 0 and recorder.events == []


def test_stop_keeps_the_running_job_queued_without_counting_it(tmp_path: Path) -> None:
    q, _ = make_queue(tmp_path)
    q.start()
    job = q.submit(parse_api(flow(1, tmp_path / "never")), ["3"])
    wait_for(lambda: q.running() is not None)
    q.stop()
    (kept,) = q.store.jobs()
    assert kept.prompt_id == job.prompt_id and kept.state == "pending" and kept.attempts == 0
