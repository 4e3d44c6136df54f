"""Scale-out figures: throughput of 40 small jobs on 1 and 2 Ray workers (and in-process), time from queueing to
the first event (Ray against local), and the share of jobs that find their checkpoint loaded with cache affinity
on and off, for a stream over 3 checkpoints. Runs a local Ray cluster with 2 CPUs; the jobs use the tiny test
pack (tests/scaleout/packs), so the figures measure Loom's overhead, not a model's."""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ray

from cli.runtime import runtime_settings
from engine.events import Event, JobFailed, JobInterrupted, JobSucceeded, NodesCached
from engine.jobs import JobQueue
from engine.store import Store
from runtime.build import build_executor, build_runtime
from scaleout.pool import PoolConfig, RayWorkerPool, code_runtime_env
from server.wire import history_messages
from tests.scaleout.conftest import CHECKPOINTS, farm_args, tiny_workflow

JOBS = 40
LATENCY_SAMPLES = 10
STREAM = 30


class Watch:
    """A queue listener that timestamps each job's first event and end, and notes cached loaders."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.warm: dict[str, bool] = {}
        self.cond = threading.Condition()

    def job_event(self, client_id: str | None, event: Event) -> None:
        now = time.perf_counter()
        with self.cond:
            self.first.setdefault(event.prompt_id, now)
            if isinstance(event, NodesCached):
                self.warm[event.prompt_id] = "1" in event.nodes
            if isinstance(event, JobSucceeded | JobFailed | JobInterrupted):
                self.done[event.prompt_id] = now
                self.cond.notify_all()

    def queue_changed(self, remaining: int) -> None:
        pass

    def wait(self, prompt_ids: list[str]) -> None:
        with self.cond:
            self.cond.wait_for(lambda: all(p in self.done for p in prompt_ids), timeout=600)


def queue_for(runner: Any, env: Any, tmp: Path, workers: int) -> tuple[JobQueue, Watch]:
    store = Store(tmp / f"bench-{time.monotonic_ns()}.db")
    queue = JobQueue(store, runner, history_messages, env, workers=workers)
    watch = Watch()
    queue.add_listener(watch)
    queue.start()
    return queue, watch


def throughput(queue: JobQueue, watch: Watch, tag: str) -> float:
    start = time.perf_counter()
    ids = [
        queue.accept(tiny_workflow(CHECKPOINTS[i % 3], f"{tag} {i}", f"bench_{tag}"))[0].prompt_id for i in range(JOBS)
    ]
    watch.wait(ids)
    return JOBS / (time.perf_counter() - start)


def first_event_ms(queue: JobQueue, watch: Watch, tag: str) -> float:
    samples = []
    for i in range(LATENCY_SAMPLES):
        start = time.perf_counter()
        pid = queue.accept(tiny_workflow("a.safetensors", f"{tag} lat {i}", f"lat_{tag}"))[0].prompt_id
        watch.wait([pid])
        samples.append((watch.first[pid] - start) * 1000)
    return statistics.median(samples)


def warm_share(pool: RayWorkerPool, env: Any, tmp: Path) -> float:
    """One client sending a stream over 3 checkpoints, one job at a time (so both workers are idle at each
    placement); each worker's cache holds 4 entries, i.e. one checkpoint and one job's other nodes."""
    queue, watch = queue_for(pool, env, tmp, pool.size)
    rng = random.Random(7)
    ids = []
    for i in range(STREAM):
        pid = queue.accept(tiny_workflow(rng.choice(CHECKPOINTS), f"stream {i}", "stream"))[0].prompt_id
        watch.wait([pid])
        ids.append(pid)
    queue.stop()
    return sum(watch.warm.get(p, False) for p in ids) / len(ids)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="loom-bench-scaleout-"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=code_runtime_env())
    args = farm_args(tmp)
    settings = runtime_settings(args)
    runtime = build_runtime(settings)

    local_queue, local_watch = queue_for(build_executor(runtime), None, tmp, 1)
    local_tp = throughput(local_queue, local_watch, "local")
    local_lat = first_event_ms(local_queue, local_watch, "local")
    local_queue.stop()
    print(f"in-process:    {local_tp:7.1f} jobs/s ({JOBS} jobs); queue -> first event {local_lat:6.1f} ms (median)")

    for per_node in (1, 2):
        pool = RayWorkerPool(PoolConfig(settings, workers_per_node=per_node), runtime.registry, runtime.folders)
        pool.start()
        queue, watch = queue_for(pool, runtime.env, tmp, pool.size)
        tp = throughput(queue, watch, f"ray{per_node}")
        lat = first_event_ms(queue, watch, f"ray{per_node}")
        queue.stop()
        pool.close()
        print(f"Ray, {per_node} worker(s): {tp:7.1f} jobs/s ({JOBS} jobs); queue -> first event {lat:6.1f} ms (median)")

    lru = runtime_settings(farm_args(tmp, "--cache-lru", "4"))
    for affinity in (True, False):
        pool = RayWorkerPool(PoolConfig(lru, workers_per_node=2, affinity=affinity), runtime.registry, runtime.folders)
        pool.start()
        share = warm_share(pool, runtime.env, tmp)
        pool.close()
        label = "on " if affinity else "off"
        print(f"affinity {label}: {share:6.1%} of {STREAM} jobs found their checkpoint loaded (3 checkpoints)")
    ray.shutdown()


if __name__ == "__main__":
    main()
