"""The SQLite store: queue order, persistence across reopen, history cap and paging."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engine.store import DatabaseFault, DatabaseInUse, DuplicateJob, Job, Store, StoreUnavailable
from engine.workflow import parse_api


def job(pid: str) -> Job:
    return Job(prompt_id=pid, number=0, workflow=parse_api({"1": {"class_type": "X", "inputs": {}}}), outputs=["1"])


def test_numbers_front_and_explicit_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db")
    a = store.add_job(job("a"))
    b = store.add_job(job("b"))
    c = store.add_job(job("c"), front=True)
    d = store.add_job(job("d"), number=1.5)
    assert (a.number, b.number, c.number, d.number) == (1, 2, -3, 1.5)
    assert [j.prompt_id for j in store.jobs()] == ["c", "a", "d", "b"]
    assert store.jobs()[0].item() == [-3, "c", {"1": {"class_type": "X", "inputs": {}}}, {}, ["1"]]


def test_survives_reopen_and_counts_attempts(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = Store(path)
    for pid in "abc":
        store.add_job(job(pid))
    taken = store.start_next()
    assert taken is not None and taken.prompt_id == "a" and taken.attempts == 1 and taken.state == "running"
    store.close()  # no clean shutdown of the job: as after a crash
    store = Store(path)
    assert [(j.prompt_id, j.state) for j in store.jobs()] == [("a", "running"), ("b", "pending"), ("c", "pending")]
    store.requeue("a")
    assert store.start_next().attempts == 2  # type: ignore[union-attr]
    assert store.add_job(job("d")).number == 4  # numbers keep rising across restarts


def test_wal_mode(tmp_path: Path) -> None:
    Store(tmp_path / "q.db")
    assert sqlite3.connect(tmp_path / "q.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_committed_before_return(tmp_path: Path) -> None:
    """Another connection sees the job as soon as add_job returns."""
    store = Store(tmp_path / "q.db")
    store.add_job(job("a"))
    assert sqlite3.connect(tmp_path / "q.db").execute("SELECT prompt_id FROM jobs").fetchall() == [("a",)]


def test_delete_and_clear_leave_running_job(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db")
    for pid in "abcd":
        store.add_job(job(pid))
    store.start_next()
    assert store.delete_jobs(["a", "c", "zz"]) == ["c"]
    assert store.clear_pending() == 2
    assert [j.prompt_id for j in store.jobs()] == ["a"]


def test_history_cap_paging_delete_clear(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db", history_cap=3)
    for i in range(5):
        store.add_job(job(f"p{i}"))
        store.finish(f"p{i}", {"n": i})
    assert store.count_jobs() == 0
    assert list(store.history()) == ["p2", "p3", "p4"]  # oldest pruned, newest last
    assert list(store.history(max_items=2)) == ["p3", "p4"]
    assert list(store.history(max_items=1, offset=1)) == ["p3"]  # offset counts from the oldest
    assert list(store.history(offset=1)) == ["p3", "p4"]
    assert store.history_entry("p3") == {"n": 3} and store.history_entry("p0") is None
    store.delete_history(["p3"])
    assert list(store.history()) == ["p2", "p4"]
    store.clear_history()
    assert store.history() == {}


def filled(path: Path, entries: int = 200) -> None:
    store = Store(path)
    for i in range(entries):
        store.add_job(job(f"p{i}"))
        store.start_next()
        store.finish(f"p{i}", {"outputs": {"1": {"text": ["x" * 500]}}, "n": i})
    store.close()


def test_a_second_store_on_the_same_file_is_refused_naming_the_owner(tmp_path: Path) -> None:
    first = Store(tmp_path / "q.db")
    with pytest.raises(DatabaseInUse, match=rf"in use by another Loom server \(pid {os.getpid()}\).*--database"):
        Store(tmp_path / "q.db")
    first.close()
    Store(tmp_path / "q.db").close()  # free again once the owner is gone


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b"this is not a database at all" * 100),
        lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
        lambda p: p.write_bytes(p.read_bytes()[:100] + b"\x00" * 50 + p.read_bytes()[150:]),
    ],
    ids=["garbage", "truncated", "header-overwritten"],
)
def test_a_damaged_database_is_refused_with_one_clear_line(tmp_path: Path, damage: Any) -> None:
    path = tmp_path / "q.db"
    filled(path)
    damage(path)
    with pytest.raises(DatabaseFault) as caught:
        Store(path)
    message = str(caught.value)
    assert str(path) in message and "move it aside" in message and "--database" in message and "\n" not in message
    with pytest.raises(DatabaseFault):  # refused again: the lock was released, the file left as it was
        Store(path)


def test_an_empty_file_is_a_new_database_only_without_a_wal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "q.db"
    path.touch()
    with caplog.at_level(logging.WARNING, logger="loom.store"):
        Store(path).close()
    assert any("empty file" in r.getMessage() for r in caplog.records)
    path.write_bytes(b"")
    path.with_name("q.db-wal").write_bytes(b"\x37\x7f\x06\x82" + b"\x00" * 60)
    with pytest.raises(DatabaseFault, match="empty but its write-ahead log"):
        Store(path)
    path.unlink()  # gone, but its log is still there: not a new database either
    with pytest.raises(DatabaseFault, match="missing but its write-ahead log"):
        Store(path)


def test_a_database_that_cannot_be_created_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("")
    with pytest.raises(StoreUnavailable, match=r"cannot create .*plain-file/q.db.lock.*--database"):
        Store(tmp_path / "plain-file" / "q.db")


def test_a_finished_prompt_id_cannot_be_queued_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db")
    store.add_job(job("a"))
    store.start_next()
    store.finish("a", {"done": True})
    with pytest.raises(DuplicateJob, match="already ran"):
        store.add_job(job("a"))
