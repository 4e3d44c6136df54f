"""A SQLite cache of model-file hashes keyed by path, size and mtime, so a restart hashes nothing again.

It is its own small database file beside the queue's (`user/model_index.db`): the CLI reads and fills it while a
server holds the queue database, and losing it costs only re-hashing.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

CHUNK = 8 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
"""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def autov2(sha256: str) -> str:
    """The short form creators paste from model sites and A1111 metadata: the first 10 hex digits."""
    return sha256[:10]


class HashCache:
    """path -> sha256 for files whose size and mtime are unchanged since they were hashed."""

    def __init__(self, path: Path | str, hasher: Callable[[Path], str] = sha256_file) -> None:
        self.path = str(path)
        self.hasher = hasher
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def lookup(self, path: Path, size: int, mtime_ns: int) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT sha256 FROM hashes WHERE path = ? AND size = ? AND mtime_ns = ?", (str(path), size, mtime_ns)
            ).fetchone()
        return row[0] if row else None

    def compute(self, path: Path, size: int, mtime_ns: int) -> str:
        """Hash the file now and remember it (the caller decides when: the indexer does it in the background)."""
        sha = self.hasher(path)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO hashes (path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)",
                (str(path), size, mtime_ns, sha),
            )
        return sha

    def close(self) -> None:
        with self._lock:
            self._db.close()
