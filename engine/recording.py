"""Writing a finished job's history entry, so that a failing write neither leaves the job `running` nor lets it
run again.

The entry is encoded (and checked) before the write: node outputs that JSON cannot hold are dropped and the job
recorded as an error naming them. A write that fails (a full disk, a locked or broken database) is retried with
backoff; meanwhile the job is marked as having run, so that a restart records it instead of running it again.
When every retry fails, a minimal error entry is written instead; when even that fails, it is kept and tried again
between jobs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from engine.store import Job, Store

log = logging.getLogger("loom.jobs")

RETRY_DELAYS = (0.1, 0.5, 2.0, 5.0)  # seconds before each further try of a failing history write
ENCODE_ERRORS = (TypeError, ValueError, RecursionError)

# (prompt_id, message, exception type) -> the history's status messages of that error (execution_error)
ErrorMessages = Callable[[str, str, str], Sequence[list[Any]]]


class HistoryWriter:
    """The job queue's way into the history. `error_messages` gives the status messages of an error in the wire
    protocol's shape (the queue's history_messages); `delays` and `wait` pace the retries."""

    def __init__(
        self,
        store: Store,
        error_messages: ErrorMessages,
        delays: Sequence[float] = RETRY_DELAYS,
        wait: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.store = store
        self.error_messages = error_messages
        self.delays = tuple(delays)
        self.wait = wait
        self._lock = threading.Lock()
        self._unwritten: dict[str, str] = {}  # prompt id -> the encoded minimal entry still to write

    def write(self, job: Job, entry: dict[str, Any]) -> None:
        """Move `job` to the history with `entry` (or, failing that, a minimal error entry)."""
        text = self._encoded(job, entry)
        error = self._try(job.prompt_id, text)
        if error is None:
            return
        log.error("job %s: writing its history entry failed (%s); retrying", job.prompt_id, error)
        try:
            self.store.mark_ran(job.prompt_id)
        except Exception:
            log.exception("job %s: could not mark it as run either", job.prompt_id)
        for delay in self.delays:
            self.wait(delay)
            error = self._try(job.prompt_id, text)
            if error is None:
                log.info("job %s: history entry written on a later try", job.prompt_id)
                return
        message = f"the job ran, but its history entry could not be written: {error}"
        minimal = json.dumps(self.minimal(job, message, "HistoryWriteFailed"))
        error = self._try(job.prompt_id, minimal)
        if error is None:
            log.error("job %s: recorded a minimal error entry instead of its history entry", job.prompt_id)
            return
        log.error(
            "job %s: not even a minimal history entry could be written (%s); trying between jobs", job.prompt_id, error
        )
        with self._lock:
            self._unwritten[job.prompt_id] = minimal

    def flush(self) -> None:
        """Try again the entries that could not be written (the worker calls this between jobs)."""
        with self._lock:
            waiting = dict(self._unwritten)
        for prompt_id, text in waiting.items():
            if self._try(prompt_id, text) is None:
                log.info("job %s: its minimal history entry is written at last", prompt_id)
                with self._lock:
                    self._unwritten.pop(prompt_id, None)

    def resume(self) -> None:
        """Jobs that ran to their end in an earlier process whose history write failed: recorded, not run again."""
        for job in self.store.jobs("ran"):
            log.error("job %s ran before Loom stopped, but its history entry was never written", job.prompt_id)
            message = "the job ran before Loom stopped, but its history entry could not be written"
            minimal = json.dumps(self.minimal(job, message, "HistoryWriteFailed"))
            if self._try(job.prompt_id, minimal) is not None:
                with self._lock:
                    self._unwritten[job.prompt_id] = minimal

    def minimal(self, job: Job, message: str, kind: str) -> dict[str, Any]:
        """An error entry small enough to fit where the real one did not: no outputs, no extra data."""
        return {
            "prompt": [*job.item()[:3], {}, job.outputs],
            "outputs": {},
            "status": {
                "status_str": "error",
                "completed": False,
                "messages": list(self.error_messages(job.prompt_id, message, kind)),
            },
            "meta": {},
            "retry": job.attempts > 1,
            "attempts": job.attempts,
        }

    def _encoded(self, job: Job, entry: dict[str, Any]) -> str:
        """The entry as JSON; node outputs that JSON cannot hold are left out and the job recorded as an error."""
        try:
            return json.dumps(entry)
        except ENCODE_ERRORS:
            pass
        outputs: dict[str, Any] = {}
        dropped: list[str] = []
        for node_id, ui in dict(entry.get("outputs") or {}).items():
            try:
                json.dumps(ui)
            except ENCODE_ERRORS as exc:
                dropped.append(f"node {node_id}: {exc}")
                continue
            outputs[node_id] = ui
        message = "the outputs of these nodes cannot be kept in the history (not JSON): " + "; ".join(dropped)
        log.error("job %s: %s", job.prompt_id, message)
        status = dict(entry.get("status") or {})
        messages = [*status.get("messages", []), *self.error_messages(job.prompt_id, message, "OutputNotSerializable")]
        entry = {
            **entry,
            "outputs": outputs,
            "status": {"status_str": "error", "completed": False, "messages": messages},
        }
        try:
            return json.dumps(entry)
        except ENCODE_ERRORS as exc:
            return json.dumps(
                self.minimal(job, f"the history entry cannot be encoded as JSON: {exc}", "OutputNotSerializable")
            )

    def _try(self, prompt_id: str, text: str) -> Exception | None:
        try:
            self.store.finish_encoded(prompt_id, text)
        except Exception as exc:
            return exc
        return None
