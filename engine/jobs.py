"""The job queue and its worker thread; every job and its history entry persist through engine.store.

The worker runs one job at a time with `Executor.run` in a thread of its own, so whoever hosts the queue (the
server's event loop) never waits on a node. Listeners get every event from that thread and must hand it on in a
thread-safe way. On start the queue resumes: pending jobs run in order, and a job that was running when the
process died runs once more, marked as a retry (a second death while retrying records an error instead).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.admit import RESOLVED_MODELS, Admission, NameResolver, admit
from engine.context import RunControl
from engine.environment import NodeEnvironment
from engine.events import (
    JOB_ENDS,
    Event,
    JobFailed,
    JobStarted,
    NodeExecuted,
    NodeExecuting,
    NodeFinished,
    NodeWarning,
)
from engine.reclaim import reclaim
from engine.recording import HistoryWriter
from engine.registry import NodeRegistry
from engine.store import Job, Store
from engine.workflow import Workflow

log = logging.getLogger("loom.jobs")

MAX_ATTEMPTS = 2  # the first run, and one retry after the process died mid-run


class WorkerLost(RuntimeError):
    """Raised by a runner whose worker process died mid-job (scale-out): the queue runs the job once more."""


class Runner(Protocol):
    """What the queue needs of engine.executor.Executor."""

    cache: Any
    registry: NodeRegistry

    def run(
        self,
        workflow: Workflow,
        *,
        outputs: Sequence[str],
        prompt_id: str,
        emit: Any,
        control: RunControl | None = None,
        extra_data: Mapping[str, Any] | None = None,
    ) -> Any: ...


# The `[type, data]` pairs an event adds to its history entry's `status.messages`: the wire protocol's mapping,
# handed in by whoever hosts the queue (server.wire.history_messages), so the history says what clients were sent.
HistoryMessages = Callable[[Event], Sequence[list[Any]]]


class JobListener(Protocol):
    """Called from the worker thread (events) or the thread that changed the queue; must not block."""

    def job_event(self, client_id: str | None, event: Event) -> None: ...

    def queue_changed(self, remaining: int) -> None: ...


@dataclass
class Running:
    """The job being run now, and the node it is on (for clients that reconnect)."""

    job: Job
    control: RunControl
    worker: str = ""  # the name of the worker thread running it
    node: str | None = None
    display_node: str | None = None
    messages: list[list[Any]] = field(default_factory=list)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)  # per node: started, ended (ms), cached


def now_ms() -> int:
    return int(time.time() * 1000)


class JobQueue:
    """Queue operations (thread-safe) plus the worker thread that drains the queue."""

    def __init__(
        self,
        store: Store,
        executor: Runner,
        history_messages: HistoryMessages,
        env: NodeEnvironment | None = None,
        workers: int = 1,
        names: NameResolver | None = None,
    ) -> None:
        """`workers` job threads run jobs at once (more than one only for a runner that spreads them, such as the
        Ray worker pool); each takes the oldest pending job. `names` resolves model names when a job is accepted."""
        self.store = store
        self.history_messages = history_messages
        self.history = HistoryWriter(store, self._error_messages)
        self.executor = executor
        self.env = env
        self.workers = max(1, workers)
        self.names = names
        self._listeners: list[JobListener] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, Running] = {}
        self._free: tuple[bool, bool] | None = None
        self._threads: list[threading.Thread] = []

    # ---- life cycle ----

    def add_listener(self, listener: JobListener) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        """Resume what the last process left, then start the worker."""
        self.resume()
        for index in range(self.workers):
            name = "loom-worker" if self.workers == 1 else f"loom-worker-{index}"
            thread = threading.Thread(target=self._supervise, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Interrupt the running jobs and stop the workers; the jobs stay queued (they run again on the next start)."""
        self._stopping.set()
        self.interrupt()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def resume(self) -> None:
        self.history.resume()
        for job in self.store.running_jobs():
            if job.attempts >= MAX_ATTEMPTS:
                log.error("job %s: Loom stopped while retrying it; recording an error", job.prompt_id)
                failed = _failure(
                    job.prompt_id, "Loom stopped while running this job, twice; not retried again", "ProcessDied"
                )
                running = Running(job, RunControl())
                running.messages.extend(self.history_messages(failed))
                self.history.write(job, self._entry(running, "error", started=job.queued_at))
            else:
                log.warning("job %s was running when Loom stopped; it runs again", job.prompt_id)
                self.store.requeue(job.prompt_id)

    # ---- queue operations ----

    def accept(
        self,
        prompt: Workflow | Mapping[str, Any],
        *,
        targets: Sequence[str] | None = None,
        prompt_id: str | None = None,
        client_id: str | None = None,
        extra_data: Mapping[str, Any] | None = None,
        front: bool = False,
        number: float | None = None,
    ) -> tuple[Job, Admission]:
        """Accept a job: parse, validate and convert it (engine.admit), then queue the converted workflow with the
        outputs that passed. Raises WorkflowError, Rejected (no valid output) or DuplicateJob."""
        admission = admit(prompt, self.executor.registry, targets, extra_data, names=self.names)
        if admission.resolved:
            resolved = [{"node": r.node_id, "input": r.input_name, "message": r.message} for r in admission.resolved]
            extra_data = {**(extra_data or {}), RESOLVED_MODELS: resolved}
        job = self.submit(
            admission.workflow,
            admission.outputs,
            prompt_id=prompt_id,
            client_id=client_id,
            extra_data=extra_data,
            front=front,
            number=number,
        )
        return job, admission

    def submit(
        self,
        workflow: Workflow,
        outputs: Sequence[str],
        *,
        prompt_id: str | None = None,
        client_id: str | None = None,
        extra_data: Mapping[str, Any] | None = None,
        front: bool = False,
        number: float | None = None,
    ) -> Job:
        """Commit an admitted workflow to the store (it survives a crash from here on) and wake the worker."""
        job = Job(
            prompt_id=prompt_id or str(uuid.uuid4()),
            number=0,
            workflow=workflow,
            extra_data=dict(extra_data or {}),
            outputs=list(outputs),
            client_id=client_id,
        )
        self.store.add_job(job, front=front, number=number)
        self._wake.set()
        self._queue_changed()
        return job

    def remaining(self) -> int:
        return self.store.count_jobs()

    def queue(self) -> tuple[list[Job], list[Job]]:
        """(running, pending) in queue order."""
        jobs = self.store.jobs()
        return [j for j in jobs if j.state == "running"], [j for j in jobs if j.state == "pending"]

    def delete(self, prompt_ids: Sequence[str]) -> list[str]:
        gone = self.store.delete_jobs(prompt_ids)
        if gone:
            self._queue_changed()
        return gone

    def clear(self) -> int:
        count = self.store.clear_pending()
        if count:
            self._queue_changed()
        return count

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Interrupt the running jobs (only `prompt_id`, when given). True if one was interrupted."""
        with self._lock:
            targets = [r for pid, r in self._running.items() if prompt_id is None or pid == prompt_id]
            for running in targets:
                running.control.interrupt()
            return bool(targets)

    def request_free(self, unload_models: bool, free_memory: bool) -> None:
        """Drop cached outputs (and models) between jobs, never under a running node."""
        with self._lock:
            prev = self._free or (False, False)
            self._free = (prev[0] or unload_models, prev[1] or free_memory)
        self._wake.set()

    def running(self) -> Running | None:
        """The oldest running job (the only one, unless several workers run jobs at once)."""
        with self._lock:
            return next(iter(self._running.values()), None)

    def running_jobs(self) -> list[Running]:
        with self._lock:
            return list(self._running.values())

    # ---- the worker ----

    def _queue_changed(self) -> None:
        remaining = self.remaining()
        for listener in self._listeners:
            listener.queue_changed(remaining)

    def _supervise(self) -> None:
        """The worker thread: its loop catches every job's failure, and should the loop itself die anyway, the jobs
        it held count as lost (one more run, then an error) and the loop starts again."""
        while True:
            try:
                self._loop()
                return
            except BaseException as exc:
                log.critical("the job worker died (%r); restarting it", exc, exc_info=exc)
            try:
                self._worker_died(threading.current_thread().name)
            except BaseException:
                log.exception("recovering the jobs of the dead worker failed; they run again on the next start")
                self._wake.wait(1.0)

    def _worker_died(self, worker: str) -> None:
        with self._lock:
            held = [r for r in self._running.values() if r.worker == worker]
            for running in held:
                self._running.pop(running.job.prompt_id, None)
        for running in held:
            self._lost(running, WorkerLost("the job worker died while running this job"), time.time())

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.history.flush()
                self._apply_free()
                with self._lock:  # taken and made interruptible in one step: /queue never shows it uninterruptible
                    job = self.store.start_next()
                    worker = threading.current_thread().name
                    running = Running(job, RunControl(), worker=worker) if job is not None else None
                    if running is not None:
                        self._running[running.job.prompt_id] = running
                if running is not None:
                    self._run(running)
                    continue
            except Exception:  # the worker outlives a failing disk or database; the job stays queued
                log.exception("the job worker hit an error; retrying shortly")
            self._wake.wait(1.0)

    def _apply_free(self) -> None:
        with self._lock:
            free, self._free = self._free, None
        if not free:
            return
        unload_models, free_memory = free
        cache = getattr(self.executor, "cache", None)
        if cache is not None and (unload_models or free_memory):
            cache.clear()
        if unload_models and self.env is not None:
            self.env.unload_models()
        reclaim()

    def _run(self, running: Running) -> None:
        job = running.job
        started = time.time()
        self._queue_changed()

        endings: list[Event] = []

        def emit(event: Event) -> None:
            self._record(running, event)
            if isinstance(event, JOB_ENDS):  # sent once the history entry is written: clients fetch it on seeing it
                endings.append(event)
            else:
                self._tell(job.client_id, event)
            if isinstance(event, JobStarted):
                for note in job.extra_data.get(RESOLVED_MODELS) or ():
                    emit(NodeWarning(job.prompt_id, str(note["node"]), f"model name resolved: {note['message']}"))

        status = "error"
        try:
            outcome = self.executor.run(
                job.workflow,
                outputs=job.outputs,
                prompt_id=job.prompt_id,
                emit=emit,
                control=running.control,
                extra_data=job.extra_data,
            )
            status = outcome.status
            running.outputs.update(outcome.outputs)
            at = now_ms()  # the nodes served from the cache (execution_cached lists every node the cache holds)
            for node in outcome.cached:
                running.nodes.setdefault(node, {"started": at, "ended": at, "cached": True})
        except WorkerLost as exc:
            with self._lock:
                self._running.pop(job.prompt_id, None)
            self._lost(running, exc, started)
            return
        except BaseException as exc:  # a bug in the executor must not stop the worker; the job records it
            log.exception("job %s failed outside any node", job.prompt_id)
            emit(_failure(job.prompt_id, str(exc), type(exc).__name__, running.node, traceback.format_exception(exc)))
        with self._lock:
            self._running.pop(job.prompt_id, None)
        if self._stopping.is_set() and status == "interrupted":
            self.store.requeue(job.prompt_id, undo_attempt=True)  # shutting down: it runs on the next start
            return
        self.history.write(job, self._entry(running, status, started=started))
        log.info("job %s: %s in %.2f s", job.prompt_id, status, time.time() - started)  # shown in logs panels
        for event in endings:
            self._tell(job.client_id, event)
        self._queue_changed()

    def _tell(self, client_id: str | None, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener.job_event(client_id, event)
            except Exception:
                log.exception("a job listener failed")

    def _lost(self, running: Running, exc: WorkerLost, started: float) -> None:
        """The worker running the job died: run it once more (the retry shows in its history entry), or record an
        error when this was the retry already."""
        job = running.job
        if job.attempts < MAX_ATTEMPTS:
            log.warning("job %s runs again: %s", job.prompt_id, exc)
            self.store.requeue(job.prompt_id)
            self._wake.set()
        else:
            log.error("job %s: %s, on its retry; recording an error", job.prompt_id, exc)
            failed = _failure(job.prompt_id, f"{exc}; not retried again", "WorkerLost", running.node)
            running.messages.extend(self.history_messages(failed))
            self.history.write(job, self._entry(running, "error", started=started))
            self._tell(job.client_id, failed)
        self._queue_changed()

    def _error_messages(self, prompt_id: str, message: str, kind: str) -> list[list[Any]]:
        return list(self.history_messages(_failure(prompt_id, message, kind)))

    def _record(self, running: Running, event: Event) -> None:
        running.messages.extend(self.history_messages(event))
        if isinstance(event, NodeExecuting):
            running.node, running.display_node = event.node, event.display_node
            running.nodes[event.node] = {"started": now_ms(), "ended": None, "cached": False}
        elif isinstance(event, NodeFinished) and event.node in running.nodes:
            running.nodes[event.node]["ended"] = now_ms()
        elif isinstance(event, NodeExecuted):
            running.outputs[event.node] = dict(event.output)
            running.meta[event.node] = {
                "node_id": event.node,
                "display_node": event.display_node,
                "parent_node": event.parent_node,
                "real_node_id": event.real_node or event.node,
            }

    def _entry(self, running: Running, status: str, started: float) -> dict[str, Any]:
        job = running.job
        return {
            "prompt": job.item(),
            "outputs": running.outputs,
            "status": {
                "status_str": "success" if status == "success" else "error",
                "completed": status == "success",
                "messages": running.messages,
            },
            "meta": running.meta,
            "timings": {
                "queued": int(job.queued_at * 1000),
                "started": int(started * 1000),
                "finished": now_ms(),
                "nodes": running.nodes,  # Loom's addition: where a run's time went, node by node
            },
            "retry": job.attempts > 1,
            "attempts": job.attempts,
        }


def _failure(
    prompt_id: str, message: str, kind: str, node_id: str | None = None, trace: Sequence[str] = ()
) -> JobFailed:
    """A job failure that no node reported (the process died, or the executor itself failed)."""
    return JobFailed(
        prompt_id=prompt_id,
        node_id=node_id or "",
        node_type="",
        executed=(),
        exception_message=message,
        exception_type=kind,
        traceback=tuple(trace),
        current_inputs={},
        current_outputs=(),
    )
