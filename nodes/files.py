"""Files the image and latent nodes read from the input folder and write to the output and temp folders.

Every path built from a widget value goes through `engine.folders.confined`, so a workflow cannot read or write
outside Loom's folders.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.folders import Folders, UnsafePath, confined

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_ANNOTATION = re.compile(r"^(?P<name>.*?)\s*\[(?P<kind>input|output|temp)\]$")


def folders_of(env: Any) -> Folders:
    """The host's folders; a clear error when the node runs without an environment that has them."""
    folders = getattr(env, "folders", None)
    if folders is None:
        raise RuntimeError("this node needs the host's folders (env.folders) and none were given")
    return folders


def list_input_files(env: Any, extensions: frozenset[str] | None = IMAGE_EXTENSIONS) -> list[str]:
    """Files at the top of the input folder (uploads land there), sorted; [] when there is no environment yet."""
    folders = getattr(env, "folders", None)
    if folders is None or not folders.input.is_dir():
        return []
    names = [
        entry.name
        for entry in os.scandir(folders.input)
        if entry.is_file()
        and not entry.name.startswith(".")
        and (extensions is None or Path(entry.name).suffix.lower() in extensions)
    ]
    return sorted(names)


def resolve_input(folders: Folders, name: str) -> Path:
    """The file a combo value names: `sub/name.png` in the input folder, or `name.png [output]` (also `[temp]`,
    `[input]`) in that folder. Raises UnsafePath for escapes, FileNotFoundError when nothing is there."""
    kind = "input"
    match = _ANNOTATION.match(name)
    if match:
        name, kind = match["name"], match["kind"]
    if not name:
        raise FileNotFoundError("no file name given")
    path = confined(folders.typed_dir(kind), name)
    if not path.is_file():
        raise FileNotFoundError(f"{name!r} is not a file in the {kind} folder")
    return path


def file_sha256(path: Path) -> str:
    """Content hash: a file replaced with new content under the same name changes it, whatever its mtime."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _expand_variables(prefix: str, width: int, height: int) -> str:
    now = time.localtime()
    values = {
        "width": str(width),
        "height": str(height),
        "year": str(now.tm_year),
        "month": f"{now.tm_mon:02d}",
        "day": f"{now.tm_mday:02d}",
        "hour": f"{now.tm_hour:02d}",
        "minute": f"{now.tm_min:02d}",
        "second": f"{now.tm_sec:02d}",
    }
    return re.sub(r"%(\w+)%", lambda m: values.get(m[1], m[0]), prefix)


@dataclass
class OutputWriter:
    """Writes numbered files `name_00001_.ext` under `base/sub/` for a `filename_prefix` such as "sub/name".

    The next counter is one past the highest already there, and each file is created exclusively, so an existing
    file is never overwritten, even by a concurrent writer.
    """

    base: Path
    kind: str
    prefix: str
    width: int = 0
    height: int = 0
    folder: Path = field(init=False)
    subfolder: str = field(init=False)
    stem: str = field(init=False)
    _next: dict[str, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        prefix = _expand_variables(self.prefix.replace("\\", "/"), self.width, self.height)
        subfolder, stem = posixpath.split(prefix)
        if not stem:
            raise UnsafePath(f"filename_prefix {self.prefix!r} has no file name after its folder")
        self.base.mkdir(parents=True, exist_ok=True)
        self.folder = confined(self.base, subfolder) if subfolder else self.base.resolve()
        # `confined` refused any escape; the subfolder is reported relative to its base, as clients expect.
        self.subfolder = self.folder.relative_to(self.base.resolve()).as_posix() if subfolder else ""
        if self.subfolder == ".":
            self.subfolder = ""
        self.stem = stem

    def _first_free(self, stem: str) -> int:
        pattern = re.compile(re.escape(stem) + r"_(\d+)_?\.")
        highest = 0
        if self.folder.is_dir():
            for entry in os.scandir(self.folder):
                match = pattern.match(entry.name)
                if match:
                    highest = max(highest, int(match[1]))
        return highest + 1

    def write(self, data: bytes, ext: str, batch_number: int = 0) -> dict[str, str]:
        """Write one file; returns its `{filename, subfolder, type}` for the node's ui output."""
        stem = self.stem.replace("%batch_num%", str(batch_number))
        self.folder.mkdir(parents=True, exist_ok=True)
        counter = self._next.get(stem) or self._first_free(stem)
        while True:
            name = f"{stem}_{counter:05d}_.{ext}"
            try:
                with (self.folder / name).open("xb") as fh:
                    fh.write(data)
                break
            except FileExistsError:
                counter += 1
        self._next[stem] = counter + 1
        return {"filename": name, "subfolder": self.subfolder, "type": self.kind}
