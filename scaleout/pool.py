"""The Ray worker pool: the job queue's runner when Loom serves with `--workers ray`.

The server keeps the queue and the history; the queue runs as many job threads as the pool has workers, and each
thread hands its job to `RayWorkerPool.run`, which places it on the idle worker whose cache holds most of what the
job needs (scaleout.affinity), relays the worker's events to the queue's listeners as they come, and brings the
output files home (scaleout.transfer). A worker that dies mid-job is restarted by Ray (`max_restarts`); the job
is handed back to the queue as lost (engine.jobs.WorkerLost), which runs it once more, elsewhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import ray
from ray.exceptions import RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from engine.context import RunControl
from engine.events import EventSink, JobFailed, JobInterrupted, JobSucceeded, NodeExecuted, discard
from engine.executor import RunOutcome
from engine.folders import Folders
from engine.jobs import WorkerLost
from engine.registry import NodeRegistry
from engine.signature import Signature
from engine.workflow import Workflow
from runtime.settings import ROOT, RuntimeSettings
from scaleout.affinity import Need, job_needs, pick
from scaleout.transfer import OutputReceiver
from scaleout.worker import LoomWorker, WorkerJob, WorkerResult

log = logging.getLogger("loom.scaleout")

POLL_SECONDS = 0.25  # longest a worker holds an event poll open; also how soon an interrupt is forwarded
AVOID_SECONDS = 10.0  # how long a retried job waits for a worker other than the one it was lost on
START_TIMEOUT = 600.0
MAX_LABELS = 10000
CODE_EXCLUDES = [
    ".git",
    ".venv",
    "web/node_modules",
    "web/dist",
    "models",
    "input",
    "output",
    "temp",
    "user",
    "**/__pycache__",
    "*.db",
    ".hypothesis",
]


@dataclass
class Slot:
    """One worker as the server sees it."""

    index: int
    name: str
    actor: Any
    state: str = "starting"  # starting | idle | busy | restarting | dead
    job: str | None = None
    held: set[Signature] = field(default_factory=set)
    info: dict[str, Any] = field(default_factory=dict)
    idle_since: float = 0.0
    jobs_done: int = 0
    restarts: int = 0


def code_runtime_env() -> dict[str, Any]:
    """Ray's runtime environment that ships this checkout's code (engine, nodes, packs under it) to every worker;
    give it to `ray.init` when the cluster is joined by code of one's own (tests, benchmarks)."""
    return {"working_dir": str(ROOT), "excludes": CODE_EXCLUDES}


@dataclass(frozen=True)
class PoolConfig:
    """How the pool is laid out; `runtime` is what every worker builds its runtime from (its folders made its own)."""

    runtime: RuntimeSettings
    address: str | None = None  # a Ray cluster to join; None starts a local one
    workers_per_node: int | None = None  # None: one per GPU, or one CPU worker
    affinity: bool = True  # place jobs where their models are loaded (False: longest idle first)
    max_restarts: int = -1  # Ray restarts of a dead worker (-1: unlimited)


class PoolCache:
    """What the job queue's `POST /free` handling sees as the executor's cache: clearing it frees every worker."""

    def __init__(self, pool: RayWorkerPool) -> None:
        self._pool = pool

    def clear(self) -> None:
        self._pool.free(unload_models=True, free_memory=True)


class RayWorkerPool:
    """Ray actors running Loom workers; implements what engine.jobs.JobQueue needs of an executor."""

    def __init__(self, config: PoolConfig, registry: NodeRegistry, folders: Folders) -> None:
        self.config = config
        self.registry = registry
        self.receiver = OutputReceiver(folders)
        self.cache = PoolCache(self)
        self.slots: list[Slot] = []
        self._cond = threading.Condition()
        self._avoid: dict[str, int] = {}
        self._labels: dict[Signature, Need] = {}
        self._started_ray = False

    # ---- life cycle ----

    def start(self) -> None:
        """Connect to the cluster (or start a local one), start the workers and wait until each has loaded."""
        if not ray.is_initialized():
            ray.init(address=self.config.address, include_dashboard=False, runtime_env=code_runtime_env())
            self._started_ray = True
        remote = ray.remote(LoomWorker)
        for index, options in enumerate(self._placements()):
            name = f"worker-{index}"
            options = dict(options, max_restarts=self.config.max_restarts, max_concurrency=4)
            actor = remote.options(**options).remote(self.config.runtime, name)
            self.slots.append(Slot(index, name, actor))
        infos = ray.get([s.actor.info.remote() for s in self.slots], timeout=START_TIMEOUT)
        with self._cond:
            for slot, info in zip(self.slots, infos, strict=True):
                slot.info, slot.state, slot.idle_since = info, "idle", time.monotonic()
            self._cond.notify_all()
        log.info("Ray worker pool: %d workers (%s)", len(self.slots), ", ".join(i["device"] for i in infos))

    def _placements(self) -> list[dict[str, Any]]:
        """Actor options per worker: on each live node, one per GPU (or `workers_per_node` sharing them), else
        `workers_per_node` CPU workers (one by default)."""
        cpu_only = self.config.runtime.cpu
        plans: list[dict[str, Any]] = []
        for node in ray.nodes():
            if not node.get("Alive"):
                continue
            resources = node.get("Resources", {})
            gpus = 0 if cpu_only else int(resources.get("GPU", 0))
            count = self.config.workers_per_node or gpus or 1
            if gpus:
                options: dict[str, Any] = {"num_gpus": 1 if count <= gpus else gpus / count, "num_cpus": 0}
            else:
                options = {"num_cpus": min(1.0, float(resources.get("CPU", 1)) / count)}
            strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=True)
            plans += [dict(options, scheduling_strategy=strategy) for _ in range(count)]
        return plans

    @property
    def size(self) -> int:
        return len(self.slots)

    def close(self) -> None:
        """Stop the workers (removing their scratch folders) and the local cluster if this pool started it."""
        for slot in self.slots:
            try:
                ray.get(slot.actor.close.remote(), timeout=10)
            except Exception:  # a dead or stuck worker: killing it below is enough
                log.debug("worker %s did not close cleanly", slot.name)
            ray.kill(slot.actor, no_restart=True)
        self.slots.clear()
        if self._started_ray:
            ray.shutdown()

    # ---- running a job (called from the queue's job threads) ----

    def run(
        self,
        workflow: Workflow,
        *,
        outputs: Sequence[str],
        prompt_id: str,
        emit: EventSink = discard,
        control: RunControl | None = None,
        extra_data: Mapping[str, Any] | None = None,
    ) -> RunOutcome:
        control = control or RunControl()
        needs = job_needs(workflow, self.registry)
        slot = self._acquire(needs, prompt_id, control)
        if slot is None:
            emit(JobInterrupted(prompt_id, None, None, ()))
            return RunOutcome("interrupted", {}, (), ())
        job = WorkerJob(prompt_id, workflow, list(outputs), dict(extra_data or {}))
        result: WorkerResult | None = None
        # The job's last event waits until the worker is idle again: a client that queues its next job on seeing
        # it must find the warm worker free, or affinity would send that job elsewhere.
        endings: list[Any] = []

        def relay(event: Any) -> None:
            (endings.append if isinstance(event, (JobSucceeded, JobFailed, JobInterrupted)) else emit)(event)

        try:
            result = self._drive(slot, job, relay, control)
        except RayActorError as exc:
            self._lost(slot, prompt_id)
            raise WorkerLost(f"worker {slot.name} died while running job {prompt_id}: {exc}") from exc
        finally:
            if result is not None or slot.state == "busy":
                self._release(slot, result)
        for event in endings:
            emit(event)
        outs = {node: self.receiver.rewrite(slot.name, ui) for node, ui in result.outputs.items()}
        return RunOutcome(result.status, outs, result.executed, result.cached)  # type: ignore[arg-type]

    def _acquire(self, needs: Mapping[Signature, Need], prompt_id: str, control: RunControl) -> Slot | None:
        """FIFO holds: the caller took the oldest job, and gets an idle worker as soon as there is one. Affinity
        only chooses among the idle ones. A retried job prefers any worker but the one it was lost on."""
        waited = time.monotonic()
        with self._cond:
            avoid = self._avoid.get(prompt_id)
            while not control.interrupted:
                if self.slots and all(s.state == "dead" for s in self.slots):
                    raise RuntimeError("every Ray worker is dead; no job can run")
                idle = sorted((s for s in self.slots if s.state == "idle"), key=lambda s: s.idle_since)
                others = [s for s in idle if s.index != avoid]
                patient = time.monotonic() - waited < AVOID_SECONDS and any(
                    s.state != "dead" for s in self.slots if s.index != avoid
                )
                candidates = others or ([] if patient else idle)
                if candidates:
                    slot = self.slots[
                        pick(needs, [(s.index, s.held) for s in candidates], affinity=self.config.affinity)
                    ]
                    slot.state, slot.job = "busy", prompt_id
                    self._avoid.pop(prompt_id, None)
                    self._remember(needs)
                    return slot
                self._cond.wait(POLL_SECONDS)
        return None

    def _drive(self, slot: Slot, job: WorkerJob, emit: EventSink, control: RunControl) -> WorkerResult:
        """Start the job on the worker and relay its events until it ends."""
        actor, pid, name = slot.actor, job.prompt_id, slot.name
        done_ref = actor.run.remote(job)
        forwarded = False
        while True:
            batch, done = ray.get(actor.next_events.remote(pid, POLL_SECONDS))
            for event, files in batch:
                if isinstance(event, NodeExecuted):
                    if files:
                        self.receiver.receive(name, files)
                    event = replace(event, output=self.receiver.rewrite(name, event.output))
                elif isinstance(event, JobSucceeded):
                    event = replace(
                        event, outputs={k: self.receiver.rewrite(name, v) for k, v in event.outputs.items()}
                    )
                emit(event)
            if control.interrupted and not forwarded:
                actor.interrupt.remote(pid)
                forwarded = True
            if done:
                return ray.get(done_ref)
            if ray.wait([done_ref], timeout=0)[0]:
                ray.get(done_ref)  # raises RayActorError when the worker died (a restarted one knows no job)

    def _release(self, slot: Slot, result: WorkerResult | None) -> None:
        with self._cond:
            if result is not None:
                slot.held, slot.info = set(result.held), result.info
            slot.state, slot.job, slot.idle_since = "idle", None, time.monotonic()
            slot.jobs_done += 1
            self._cond.notify_all()

    def _lost(self, slot: Slot, prompt_id: str) -> None:
        """The worker died: Ray restarts it (empty cache); the job should go elsewhere next time."""
        log.warning("worker %s died running job %s; Ray restarts it", slot.name, prompt_id)
        with self._cond:
            slot.state, slot.job, slot.held = "restarting", None, set()
            slot.restarts += 1
            self._avoid[prompt_id] = slot.index
        threading.Thread(
            target=self._await_restart, args=(slot,), name=f"loom-{slot.name}-restart", daemon=True
        ).start()

    def _await_restart(self, slot: Slot) -> None:
        """Ask the restarted actor for its info; while Ray is still restarting it, calls fail fast, so ask again."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                info = ray.get(slot.actor.info.remote(), timeout=max(1.0, deadline - time.monotonic()))
                state = "idle"
                break
            except ray.exceptions.ActorUnavailableError:
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                log.exception("worker %s did not come back", slot.name)
                info, state = slot.info, "dead"
                break
            except Exception:  # restarts exhausted, or the cluster went away
                log.exception("worker %s did not come back", slot.name)
                info, state = slot.info, "dead"
                break
        with self._cond:
            slot.info, slot.state, slot.idle_since = info, state, time.monotonic()
            self._cond.notify_all()

    def _remember(self, needs: Mapping[Signature, Need]) -> None:
        """Keep labels of signatures for the stats (bounded; call with the lock held)."""
        self._labels.update(needs)
        while len(self._labels) > MAX_LABELS:
            self._labels.pop(next(iter(self._labels)))

    # ---- between jobs ----

    def free(self, unload_models: bool, free_memory: bool) -> None:
        refs = [s.actor.free.remote(unload_models, free_memory) for s in self.slots if s.state != "dead"]
        try:
            ray.get(refs, timeout=60)
        except Exception:
            log.exception("freeing memory on the workers failed")
        with self._cond:
            for slot in self.slots:
                slot.held = set()

    def stats(self) -> list[dict[str, Any]]:
        """The workers for `GET /system_stats`: device, memory, what they hold (the heavy entries named) and job."""
        with self._cond:
            out = []
            for slot in self.slots:
                info = slot.info
                heavy = [self._labels[s] for s in slot.held if s in self._labels and self._labels[s].weight > 1]
                heavy.sort(key=lambda n: -n.weight)
                out.append(
                    {
                        "name": slot.name,
                        "state": slot.state,
                        "job": slot.job,
                        "device": info.get("device"),
                        "node_ip": info.get("node_ip"),
                        "pid": info.get("pid"),
                        "memory": info.get("memory", {}),
                        "cache": {
                            **info.get("cache", {}),
                            "signatures": len(slot.held),
                            "models": [n.label for n in heavy[:10]],
                        },
                        "jobs_done": slot.jobs_done,
                        "restarts": slot.restarts,
                    }
                )
            return out
