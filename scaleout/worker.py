"""One Loom worker: a process (a Ray actor) with its own registry, node packs, model cache and device, running the
engine's Executor on jobs the server hands it.

Ray runs it as a threaded actor: `run` executes a job in one thread while the server long-polls `next_events`
from another, so events and previews reach the server as they happen. Output files come back attached to the
`NodeExecuted` events that name them (see scaleout.transfer).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.context import RunControl
from engine.events import Event, NodeExecuted
from engine.workflow import Workflow
from runtime.settings import ROOT, RuntimeSettings
from scaleout.transfer import OutputFile, collect_files

MAX_HELD_REPORTED = 4096  # most recently used cache keys a worker reports after a job


@dataclass(frozen=True, slots=True)
class WorkerJob:
    prompt_id: str
    workflow: Workflow  # the admitted, converted workflow, as the queue stored it
    outputs: list[str]
    extra_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkerResult:
    status: str
    outputs: dict[str, dict[str, Any]]
    executed: tuple[str, ...]
    cached: tuple[str, ...]
    held: list[bytes]
    info: dict[str, Any]


Delivery = tuple[Event, list[OutputFile]]


def worker_settings(settings: RuntimeSettings, scratch: Path, has_gpu: bool) -> RuntimeSettings:
    """The server's settings as a worker uses them: its own output, temp and user folders (no shared disk), the
    server's model and node-pack folders (configured per machine), and the CPU when it was given no GPU."""
    base = settings.base_directory
    return replace(
        settings,
        output_directory=scratch / "output",
        temp_directory=scratch / "temp",
        user_directory=scratch / "user",
        base_directory=base if Path(base).is_dir() else ROOT,  # another machine: the code Ray shipped is the base
        cpu=settings.cpu or not has_gpu,
    )


class LoomWorker:
    def __init__(self, settings: RuntimeSettings, name: str) -> None:
        import ray

        from runtime.build import build_executor, build_runtime

        self.name = name
        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        self.scratch = Path(tempfile.mkdtemp(prefix=f"loom-{name}-"))
        runtime = build_runtime(worker_settings(settings, self.scratch, bool(self.gpu_ids)))
        self.folders = runtime.folders
        self.env = runtime.env
        self.executor = build_executor(runtime)
        self.node_ip = ray.util.get_node_ip_address()
        self._events: deque[Delivery] = deque()
        self._cond = threading.Condition()
        self._job: str | None = None
        self._done = True
        self._control = RunControl()

    # ---- the job ----

    def run(self, job: WorkerJob) -> WorkerResult:
        with self._cond:
            self._events.clear()
            self._job, self._done, self._control = job.prompt_id, False, RunControl()
        try:
            outcome = self.executor.run(
                job.workflow,
                outputs=job.outputs,
                prompt_id=job.prompt_id,
                emit=self._emit,
                control=self._control,
                extra_data=job.extra_data,
            )
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()
        return WorkerResult(outcome.status, outcome.outputs, outcome.executed, outcome.cached, self.held(), self.info())

    def _emit(self, event: Event) -> None:
        files = collect_files(event.output, self.folders) if isinstance(event, NodeExecuted) else []
        if isinstance(event, NodeExecuted):
            event = replace(event, output=dict(event.output))
        with self._cond:
            self._events.append((event, files))
            self._cond.notify_all()

    def next_events(self, prompt_id: str, timeout: float) -> tuple[list[Delivery], bool]:
        """The events of `prompt_id` so far (waiting up to `timeout` for one), and whether its run has ended with
        nothing left to send. Calls to a threaded actor may overtake each other: a poll that arrives before its
        job has started waits like any other."""
        with self._cond:
            if self._job != prompt_id or (not self._events and not self._done):
                self._cond.wait_for(lambda: self._job == prompt_id and (self._events or self._done), timeout)
            if self._job != prompt_id:
                return [], False
            batch = list(self._events)
            self._events.clear()
            return batch, self._done

    def interrupt(self, prompt_id: str | None = None) -> bool:
        with self._cond:
            if self._done or (prompt_id is not None and prompt_id != self._job):
                return False
            self._control.interrupt()
            return True

    # ---- what the scheduler and /system_stats learn ----

    def held(self) -> list[bytes]:
        """The signatures this worker's cache holds, most recently used last (at most MAX_HELD_REPORTED)."""
        return list(self.executor.cache.keys())[-MAX_HELD_REPORTED:]

    def info(self) -> dict[str, Any]:
        import psutil

        stats = self.executor.cache.stats()
        return {
            "name": self.name,
            "pid": os.getpid(),
            "node_ip": self.node_ip,
            "device": _device(self.gpu_ids),
            "gpu_ids": self.gpu_ids,
            "memory": {"rss": psutil.Process().memory_info().rss, **_vram()},
            "cache": {"entries": stats.entries, "bytes": stats.bytes, "hits": stats.hits, "misses": stats.misses},
        }

    def free(self, unload_models: bool, free_memory: bool) -> None:
        """`POST /free` on this worker: drop cached outputs, and loaded models when asked."""
        if unload_models or free_memory:
            self.executor.cache.clear()
        if unload_models:
            self.env.unload_models()

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def _device(gpu_ids: list[str]) -> str:
    return f"cuda:0 (GPU {gpu_ids[0]})" if gpu_ids else "cpu"


def _vram() -> Mapping[str, int]:
    """GPU memory when torch is loaded already (a worker that has run no model node has not imported it)."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is None or not cuda.is_available():
        return {}
    free, total = cuda.mem_get_info(0)
    return {"vram_total": total, "vram_free": free, "torch_vram_allocated": cuda.memory_allocated(0)}
