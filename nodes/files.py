"""Files the image and latent nodes read from the input folder and write to the output and temp folders.

Every path built from a widget value goes through `engine.folders.confined`, so a workflow cannot read or write
outside Loom's folders.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import secrets
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.context import NodeContext
from engine.environment import NodeEnvironment
from engine.folders import Folders, UnsafePath, confined
from nodes.imageio import encode_png, text_chunks, to_uint8
from nodes.shared import folders_of

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_ANNOTATION = re.compile(r"^(?P<name>.*?)\s*\[(?P<kind>input|output|temp)\]$")


def list_input_files(env: NodeEnvironment | None, extensions: frozenset[str] | None = IMAGE_EXTENSIONS) -> list[str]:
    """Files at the top of the input folder (uploads land there), sorted; [] when there is no environment yet."""
    if env is None or not env.folders.input.is_dir():
        return []
    folders = env.folders
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
    if not isinstance(name, str):
        raise ValueError(f"expected a file name, got {type(name).__name__} {name!r}")
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


def input_fingerprint(env: NodeEnvironment | None, name: str) -> str:
    """A loader's fingerprint: the content hash of the input file it names, so replacing an uploaded file under
    the same name re-runs the loader; a stand-in naming the file when it cannot be read (validation says why)."""
    try:
        return file_sha256(resolve_input(folders_of(env), name))
    except (OSError, ValueError, RuntimeError):
        return f"missing:{name}"


def check_input_file(env: NodeEnvironment | None, name: str, kind: str) -> bool | str:
    """A loader's validate hook: True when `name` is a file in Loom's folders, else the message to show."""
    try:
        resolve_input(folders_of(env), name)
    except (OSError, ValueError, RuntimeError) as exc:
        return f"Invalid {kind} file {name!r}: {exc}"
    return True


_DATE_TOKENS = re.compile(r"yyyy|yy|MM|M|dd|d|hh|h|mm|m|ss|s")


def _format_date(pattern: str, now: time.struct_time) -> str:
    """`yyyy-MM-dd hh-mm-ss` style patterns, as canvas workflows write them in `%date:...%`."""
    fields = {
        "yyyy": f"{now.tm_year:04d}", "yy": f"{now.tm_year % 100:02d}",
        "MM": f"{now.tm_mon:02d}", "M": str(now.tm_mon), "dd": f"{now.tm_mday:02d}", "d": str(now.tm_mday),
        "hh": f"{now.tm_hour:02d}", "h": str(now.tm_hour), "mm": f"{now.tm_min:02d}", "m": str(now.tm_min),
        "ss": f"{now.tm_sec:02d}", "s": str(now.tm_sec),
    }  # fmt: skip
    return _DATE_TOKENS.sub(lambda m: fields[m[0]], pattern)


def _widget_value(prompt: Any, title: str, widget: str) -> str | None:
    """The literal value of `widget` on the node titled (or with id) `title` in an API-format prompt."""
    if not isinstance(prompt, dict):
        return None
    for node_id, entry in prompt.items():
        if not isinstance(entry, dict):
            continue
        meta = entry.get("_meta") or {}
        if title in (str(node_id), meta.get("title"), entry.get("class_type")):
            value = (entry.get("inputs") or {}).get(widget)
            if value is not None and not isinstance(value, list | dict):
                return str(value)
    return None


def expand_prefix(prefix: str, width: int = 0, height: int = 0, prompt: Any = None) -> str:
    """Replace `%width%`, `%height%`, `%year%` ... `%second%`, `%date:FORMAT%` and `%Node title.widget%` in a
    filename prefix; the canvas does this before queueing, headless runs rely on this. Unknown names stay."""
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

    def replace(match: re.Match[str]) -> str:
        name = match[1]
        if name.startswith("date:"):
            return _format_date(name[5:], now)
        if name in values:
            return values[name]
        title, dot, widget = name.rpartition(".")
        found = _widget_value(prompt, title, widget) if dot else None
        return match[0] if found is None else found.replace("/", "_").replace("\\", "_")

    return re.sub(r"%([^%/\\]+)%", replace, prefix)


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
    prompt: Any = None
    folder: Path = field(init=False)
    subfolder: str = field(init=False)
    stem: str = field(init=False)
    _next: dict[str, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        prefix = expand_prefix(self.prefix.replace("\\", "/"), self.width, self.height, self.prompt)
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
            path = self.folder / name
            try:
                fh = path.open("xb")  # taking the name and creating the file in one step: no writer shares it
            except FileExistsError:
                counter += 1
                continue
            try:
                with fh:
                    fh.write(data)
            except BaseException:
                path.unlink(missing_ok=True)  # a full disk leaves no empty or half-written file behind
                raise
            break
        self._next[stem] = counter + 1
        return {"filename": name, "subfolder": self.subfolder, "type": self.kind}


def save_images(
    ctx: NodeContext, images: Any, prefix: str, kind: str, prompt: Any, extra_pnginfo: Any, compress_level: int
) -> dict[str, Any]:
    """Write an IMAGE batch as numbered PNGs into the `kind` folder ("output" or "temp"); the node's ui result
    (also what packs' save helpers return, through compat)."""
    folders = folders_of(ctx.env)
    h, w = images.shape[1], images.shape[2]
    writer = OutputWriter(folders.typed_dir(kind), kind, prefix, width=w, height=h, prompt=prompt)
    text = text_chunks(prompt, extra_pnginfo)
    saved = []
    for number, image in enumerate(images):
        ctx.check_interrupt()
        data = encode_png(to_uint8(image), text, compress_level=compress_level)
        saved.append(writer.write(data, "png", batch_number=number))
    return {"ui": {"images": saved}, "result": ()}


def preview_images(ctx: NodeContext, images: Any, prompt: Any, extra_pnginfo: Any) -> dict[str, Any]:
    """Write `images` to the temp folder under a random prefix and report them for display."""
    suffix = "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))
    return save_images(ctx, images, f"Loom_temp_{suffix}", "temp", prompt, extra_pnginfo, compress_level=1)
