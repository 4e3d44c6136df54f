"""Output files from workers to the server, so workers need no shared disk.

A worker writes images into its own temporary output and temp folders, as any node does; whenever it reports a
node's display output it attaches the bytes of the files named there. The server writes them into its own folders
(numbered as a local run would number them) and rewrites the display output to name the server's files, before
clients or the history see it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.folders import Folders, UnsafePath, confined
from nodes.files import OutputWriter

FILE_KINDS = ("output", "temp")
MAX_REMEMBERED = 50000  # placed files remembered for cached re-reports; the oldest are forgotten first
_NUMBERED = re.compile(r"^(?P<stem>.+?)_\d+_?\.(?P<ext>[A-Za-z0-9]+)$")


@dataclass(frozen=True, slots=True)
class OutputFile:
    kind: str
    subfolder: str
    filename: str
    data: bytes

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.subfolder, self.filename)


def _file_refs(ui: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `{filename, subfolder, type}` entries of a display output that name output or temp files."""
    refs = []
    for value in ui.values():
        if not isinstance(value, list | tuple):
            continue
        for item in value:
            if isinstance(item, Mapping) and isinstance(item.get("filename"), str) and item.get("type") in FILE_KINDS:
                refs.append(dict(item))
    return refs


def collect_files(ui: Mapping[str, Any], folders: Folders) -> list[OutputFile]:
    """Worker side: the files a display output names, read from this worker's folders (missing ones skipped)."""
    files = []
    for ref in _file_refs(ui):
        kind, sub, name = ref["type"], str(ref.get("subfolder") or ""), ref["filename"]
        try:
            path = confined(folders.typed_dir(kind), sub, name)
            files.append(OutputFile(kind, sub, name, path.read_bytes()))
        except (UnsafePath, OSError):
            continue
    return files


class OutputReceiver:
    """Server side: writes workers' files into the server's folders, remembering where each one went so a file that
    a worker reports again (a cached output node) is written only once."""

    def __init__(self, folders: Folders) -> None:
        self.folders = folders
        self._placed: dict[tuple[str, tuple[str, str, str]], dict[str, str]] = {}
        self._lock = threading.Lock()

    def receive(self, worker: str, files: list[OutputFile]) -> None:
        with self._lock:
            for file in files:
                key = (worker, file.key)
                if key in self._placed and self._exists(self._placed[key]):
                    continue
                self._placed[key] = self._write(file)
            while len(self._placed) > MAX_REMEMBERED:
                self._placed.pop(next(iter(self._placed)))

    def _exists(self, ref: Mapping[str, str]) -> bool:
        try:
            return confined(self.folders.typed_dir(ref["type"]), ref["subfolder"], ref["filename"]).is_file()
        except UnsafePath:
            return False

    def _write(self, file: OutputFile) -> dict[str, str]:
        match = _NUMBERED.match(file.filename)
        stem, ext = (match["stem"], match["ext"]) if match else (file.filename.rsplit(".", 1)[0], "bin")
        if not match and "." in file.filename:
            ext = file.filename.rsplit(".", 1)[1]
        prefix = f"{file.subfolder}/{stem}" if file.subfolder else stem
        writer = OutputWriter(self.folders.typed_dir(file.kind), file.kind, prefix.replace("%", "_"))
        return writer.write(file.data, ext)

    def rewrite(self, worker: str, ui: Mapping[str, Any]) -> dict[str, Any]:
        """The display output with each worker file replaced by the server's copy (unknown ones left as they are)."""
        out: dict[str, Any] = {}
        with self._lock:
            for name, value in ui.items():
                if isinstance(value, list | tuple):
                    out[name] = [self._map(worker, item) for item in value]
                else:
                    out[name] = value
        return out

    def _map(self, worker: str, item: Any) -> Any:
        if not (isinstance(item, Mapping) and isinstance(item.get("filename"), str) and item.get("type") in FILE_KINDS):
            return item
        placed = self._placed.get((worker, (item["type"], str(item.get("subfolder") or ""), item["filename"])))
        return {**item, **placed} if placed is not None else dict(item)
