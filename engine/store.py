"""SQLite persistence for the job queue and the history, so that a crash loses nothing.

One file (WAL mode, synchronous=FULL): a job is committed before `/prompt` answers, and a job's move from the queue
to the history is one transaction. One connection guarded by a lock: every statement is short, and the worker thread
and the server's threads share it. One process owns the file (an flock on `<file>.lock`, which holds its pid), and
a damaged file is refused at opening, never replaced by an empty history.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from engine.workflow import Workflow, parse_api

JobState = Literal["pending", "running", "ran"]  # ran: finished, its history entry not yet written
log = logging.getLogger("loom.store")

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    prompt_id TEXT PRIMARY KEY,
    number REAL NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    prompt TEXT NOT NULL,
    extra_data TEXT NOT NULL,
    outputs TEXT NOT NULL,
    client_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    queued_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_order ON jobs (state, number, seq);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id TEXT NOT NULL UNIQUE,
    entry TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class DuplicateJob(ValueError):
    """A prompt id that is already queued, or that names a finished job."""


class StoreUnavailable(RuntimeError):
    """The database cannot be used; the message is one line naming the file and what to do."""


class DatabaseInUse(StoreUnavailable):
    """Another process (another Loom server) holds the database."""


class DatabaseFault(StoreUnavailable):
    """The file is not a readable Loom database (corrupt, truncated, not SQLite)."""


@dataclass
class Job:
    """A queued job. `number` orders the queue (lowest first); `attempts` counts the runs started so far.
    `workflow` is the validated, converted workflow: what runs is what was validated."""

    prompt_id: str
    number: float
    workflow: Workflow
    extra_data: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    client_id: str | None = None
    state: JobState = "pending"
    attempts: int = 0
    queued_at: float = 0.0

    def item(self) -> list[Any]:
        """The API's queue item: [number, prompt_id, prompt, extra_data, outputs_to_execute]."""
        return [self.number, self.prompt_id, self.workflow.to_api(), self.extra_data, self.outputs]


class Store:
    """The queue and the history in one SQLite file; `history_cap` bounds the history (oldest pruned first)."""

    def __init__(self, path: Path | str, history_cap: int = 10000) -> None:
        """Opens the database for this process alone (a second Store on the same file raises DatabaseInUse) and
        checks it (a damaged file raises DatabaseFault: nothing is ever silently replaced by an empty history)."""
        self.path = str(path)
        self._owner = None
        if self.path != ":memory:":
            self._owner = _take_ownership(Path(self.path))
            try:
                _check_file(Path(self.path))
            except DatabaseFault:
                self._release()
                raise
        self.history_cap = history_cap
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            problems = [row[0] for row in self._db.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("; ".join(problems[:3]))
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._release()
            raise DatabaseFault(
                f"{self.path} cannot be used as Loom's database ({exc}): move it aside to start with an empty "
                "queue and history, or start Loom with --database pointing at another file"
            ) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._release()

    def _release(self) -> None:
        if self._owner is not None:
            self._owner.close()  # closing the file drops the lock
            self._owner = None

    def _tx(self, fn: Callable[[sqlite3.Cursor], T]) -> T:
        """Run `fn(cursor)` in one transaction under the lock."""
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                result = fn(cur)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            return result

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ---- queue ----

    def add_job(self, job: Job, front: bool = False, number: float | None = None) -> Job:
        """Commit a pending job. Its number: `number` if given, else the next counter value (negated for `front`,
        so it sorts before every job queued normally)."""

        def add(cur: sqlite3.Cursor) -> Job:
            if cur.execute("SELECT 1 FROM history WHERE prompt_id = ?", (job.prompt_id,)).fetchone():
                raise DuplicateJob(f"prompt id {job.prompt_id!r} names a job that already ran; use a new id")
            cur.execute("INSERT OR IGNORE INTO counters VALUES ('number', 0)")
            cur.execute("UPDATE counters SET value = value + 1 WHERE name = 'number' RETURNING value")
            counter = cur.fetchone()[0]
            job.number = number if number is not None else (-counter if front else counter)
            job.queued_at = job.queued_at or time.time()
            job.state = "pending"
            cur.execute(
                "INSERT INTO jobs (prompt_id, number, seq, state, prompt, extra_data, outputs, client_id, attempts,"
                " queued_at) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
                (
                    job.prompt_id,
                    job.number,
                    counter,
                    json.dumps(job.workflow.to_api()),
                    json.dumps(job.extra_data),
                    json.dumps(job.outputs),
                    job.client_id,
                    job.attempts,
                    job.queued_at,
                ),
            )
            return job

        try:
            return self._tx(add)
        except sqlite3.IntegrityError as exc:
            raise DuplicateJob(f"prompt id {job.prompt_id!r} is already queued") from exc

    def has_job(self, prompt_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM jobs WHERE prompt_id = ?", (prompt_id,)))

    def jobs(self, state: JobState | None = None) -> list[Job]:
        """Jobs in queue order (number, then arrival)."""
        sql = "SELECT prompt_id, number, prompt, extra_data, outputs, client_id, state, attempts, queued_at FROM jobs"
        args: tuple[Any, ...] = ()
        if state:
            sql += " WHERE state = ?"
            args = (state,)
        rows = self._query(sql + " ORDER BY number, seq", args)
        return [_job(row) for row in rows]

    def count_jobs(self) -> int:
        count: int = self._query("SELECT COUNT(*) FROM jobs WHERE state != 'ran'")[0][0]
        return count

    def start_next(self) -> Job | None:
        """Mark the first pending job running (counting the attempt) and return it, or None when none waits."""

        def take(cur: sqlite3.Cursor) -> Job | None:
            cur.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1 WHERE prompt_id = ("
                " SELECT prompt_id FROM jobs WHERE state = 'pending' ORDER BY number, seq LIMIT 1)"
                " RETURNING prompt_id, number, prompt, extra_data, outputs, client_id, state, attempts, queued_at"
            )
            row = cur.fetchone()
            return _job(row) if row else None

        return self._tx(take)

    def running_jobs(self) -> list[Job]:
        return self.jobs("running")

    def requeue(self, prompt_id: str, undo_attempt: bool = False) -> None:
        """Put a running job back at its place in the queue; `undo_attempt` when it was stopped on purpose."""
        sql = "UPDATE jobs SET state = 'pending', attempts = attempts - ? WHERE prompt_id = ?"
        self._tx(lambda cur: cur.execute(sql, (int(undo_attempt), prompt_id)))

    def delete_jobs(self, prompt_ids: Iterable[str], state: JobState = "pending") -> list[str]:
        ids = list(prompt_ids)

        def delete(cur: sqlite3.Cursor) -> list[str]:
            gone = []
            for pid in ids:
                cur.execute("DELETE FROM jobs WHERE prompt_id = ? AND state = ? RETURNING prompt_id", (pid, state))
                gone += [r[0] for r in cur.fetchall()]
            return gone

        return self._tx(delete)

    def clear_pending(self) -> int:
        return self._tx(lambda cur: int(cur.execute("DELETE FROM jobs WHERE state = 'pending'").rowcount))

    # ---- history ----

    def mark_ran(self, prompt_id: str) -> None:
        """The job ran to its end but its history entry is not written yet: a restart must not run it again."""
        self._tx(lambda cur: cur.execute("UPDATE jobs SET state = 'ran' WHERE prompt_id = ?", (prompt_id,)))

    def finish(self, prompt_id: str, entry: dict[str, Any]) -> None:
        self.finish_encoded(prompt_id, json.dumps(entry))

    def finish_encoded(self, prompt_id: str, entry: str) -> None:
        """Move a job to the history (its entry as JSON text) in one transaction, pruning the oldest entries beyond
        the cap."""

        def move(cur: sqlite3.Cursor) -> None:
            cur.execute("DELETE FROM jobs WHERE prompt_id = ?", (prompt_id,))
            cur.execute("DELETE FROM history WHERE prompt_id = ?", (prompt_id,))
            cur.execute("INSERT INTO history (prompt_id, entry) VALUES (?, ?)", (prompt_id, entry))
            cur.execute(
                "DELETE FROM history WHERE seq NOT IN (SELECT seq FROM history ORDER BY seq DESC LIMIT ?)",
                (max(self.history_cap, 0),),
            )

        self._tx(move)

    def history(self, max_items: int | None = None, offset: int | None = None) -> dict[str, dict[str, Any]]:
        """Entries oldest first. `offset` skips that many of the oldest; `max_items` alone gives the newest ones,
        with `offset` the first `max_items` from there."""
        if offset is None:
            if max_items is None:
                rows = self._query("SELECT prompt_id, entry FROM history ORDER BY seq")
            else:
                rows = self._query("SELECT prompt_id, entry FROM history ORDER BY seq DESC LIMIT ?", (max_items,))
                rows.reverse()
        else:
            limit = -1 if max_items is None else max_items
            rows = self._query("SELECT prompt_id, entry FROM history ORDER BY seq LIMIT ? OFFSET ?", (limit, offset))
        return {pid: json.loads(entry) for pid, entry in rows}

    def history_entry(self, prompt_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT entry FROM history WHERE prompt_id = ?", (prompt_id,))
        return json.loads(rows[0][0]) if rows else None

    def delete_history(self, prompt_ids: Iterable[str]) -> None:
        ids = list(prompt_ids)
        self._tx(lambda cur: cur.executemany("DELETE FROM history WHERE prompt_id = ?", [(i,) for i in ids]))

    def clear_history(self) -> None:
        self._tx(lambda cur: cur.execute("DELETE FROM history"))


def _job(row: Sequence[Any]) -> Job:
    prompt_id, number, prompt, extra_data, outputs, client_id, state, attempts, queued_at = row
    return Job(
        prompt_id=prompt_id,
        number=int(number) if float(number).is_integer() else number,
        workflow=parse_api(json.loads(prompt)),
        extra_data=json.loads(extra_data),
        outputs=json.loads(outputs),
        client_id=client_id,
        state=state,
        attempts=attempts,
        queued_at=queued_at,
    )


def _take_ownership(path: Path) -> Any:
    """An exclusive lock on `<db>.lock`, which records the owner's pid: two servers on one database would run
    the same jobs. The lock goes with the process, however it ends."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        owner = open(lock_path, "a+")  # noqa: SIM115 (held open for the Store's life)
    except OSError as exc:
        raise StoreUnavailable(
            f"cannot create {lock_path} ({exc.strerror}): Loom writes its database and a lock file there; "
            "start it with --database pointing at a writable folder"
        ) from None
    try:
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner.seek(0)
        pid = owner.read().strip() or "unknown"
        owner.close()
        raise DatabaseInUse(
            f"{path} is in use by another Loom server (pid {pid}); stop that one first, "
            "or start this one with its own --database"
        ) from None
    owner.seek(0)
    owner.truncate()
    owner.write(str(os.getpid()))
    owner.flush()
    return owner


def _check_file(path: Path) -> None:
    """A missing or empty file is a new database only when no write-ahead log holds content of the old one."""
    size = path.stat().st_size if path.exists() else None
    if size:
        return
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size:
        raise DatabaseFault(
            f"{path} is {'empty' if size == 0 else 'missing'} but its write-ahead log {wal.name} is not: the database "
            "is damaged; move both aside to start with an empty queue and history, or start Loom with --database "
            "pointing at another file"
        )
    if size is None:
        log.info("creating a new database at %s", path)
    else:
        log.warning("%s is an empty file; starting a new database in it", path)
