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

MODEL_INDEX_FILE = "model_index.db"
"""Its name in the user folder."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
"""


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


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

    def known(self) -> dict[tuple[str, int, int], str]:
        """Every cached hash by (path, size, mtime_ns): one query, so a scan of thousands of files stays fast."""
        with self._lock:
            rows = self._db.execute("SELECT path, size, mtime_ns, sha256 FROM hashes").fetchall()
        return {(path, size, mtime): sha for path, size, mtime, sha in rows}

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
