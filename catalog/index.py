"""Every file under the model folders (extra paths and symlinks included) with its size, mtime and, once the
background hasher reached it, its sha256."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from catalog.hashes import HashCache, autov2
from engine.folders import Folders

log = logging.getLogger("loom.catalog")


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One model file under the name workflows use for it (`sub/name.safetensors` in `folder`)."""

    folder: str
    name: str
    path: Path
    size: int
    mtime_ns: int
    sha256: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "folder": self.folder,
            "name": self.name,
            "size": self.size,
            "modified": self.mtime_ns / 1e9,
            "sha256": self.sha256,
            "autov2": autov2(self.sha256) if self.sha256 else None,
        }


class ModelIndex:
    """The model files of one Loom instance. `scan` is cheap (stat only, hashes from the cache); hashing runs in
    `hash_pending`, which the server starts on a low-priority thread."""

    def __init__(self, folders: Folders, cache: HashCache | None = None) -> None:
        self.folders = folders
        self.cache = cache
        self._lock = threading.Lock()
        self._files: dict[tuple[str, str], ModelFile] = {}
        self._stop = threading.Event()

    def scan(self) -> None:
        found: dict[tuple[str, str], ModelFile] = {}
        known = self.cache.known() if self.cache else {}
        for folder in self.folders.models:
            for name, _, path in self.folders.iter_model_files(folder):
                if (folder, name) in found:
                    continue
                try:
                    stat = path.stat()
                except OSError:
                    continue
                sha = known.get((str(path), stat.st_size, stat.st_mtime_ns))
                found[(folder, name)] = ModelFile(folder, name, path, stat.st_size, stat.st_mtime_ns, sha)
        with self._lock:
            self._files = found

    def files(self, folder: str | None = None) -> list[ModelFile]:
        canonical = self.folders.canonical(folder) if folder else None
        with self._lock:
            files = list(self._files.values())
        chosen = (f for f in files if canonical is None or f.folder == canonical)
        return sorted(chosen, key=lambda f: (f.folder, f.name))

    def pending(self) -> list[ModelFile]:
        return [f for f in self.files() if f.sha256 is None]

    def hash_pending(self, only: Iterable[ModelFile] | None = None) -> int:
        """Hash files that have no hash yet (all of them, or `only`); returns how many were hashed."""
        if self.cache is None:
            return 0
        count = 0
        for entry in list(only) if only is not None else self.pending():
            if self._stop.is_set():
                break
            if entry.sha256 is not None:
                continue
            try:
                sha = self.cache.compute(entry.path, entry.size, entry.mtime_ns)
            except OSError as exc:
                log.warning("could not hash %s: %s", entry.path, exc)
                continue
            with self._lock:
                key = (entry.folder, entry.name)
                if key in self._files and self._files[key].mtime_ns == entry.mtime_ns:
                    self._files[key] = replace(self._files[key], sha256=sha)
            count += 1
        return count

    def start_background_hashing(self) -> threading.Thread:
        """Hash what is pending on a daemon thread at the lowest CPU priority the OS gives a thread."""

        def run() -> None:
            if hasattr(os, "setpriority"):
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            hashed = self.hash_pending()
            if hashed:
                log.info("model index: hashed %d file(s)", hashed)

        thread = threading.Thread(target=run, name="loom-model-hashing", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def by_hash(self, digest: str, folder: str | None = None) -> list[ModelFile]:
        """Files whose sha256 is `digest` or starts with it (an AutoV2 prefix); case-insensitive."""
        digest = digest.strip().lower()
        if len(digest) < 8:
            return []
        return [f for f in self.files(folder) if f.sha256 is not None and f.sha256.startswith(digest)]
