"""Where Loom reads and writes files: input, output and temp folders, and the model folders.

Every path that comes from a request or a workflow goes through `confined`, so nothing escapes its folder.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL_FOLDERS = (
    "checkpoints",
    "vae",
    "loras",
    "controlnet",
    "embeddings",
    "upscale_models",
    "clip",
    "diffusion_models",
    "clip_vision",
    "ipadapter",
    "style_models",
    "gligen",
    "hypernetworks",
    "configs",
)
MODEL_EXTENSIONS = frozenset({".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft"})
FOLDER_ALIASES = {"unet": "diffusion_models", "text_encoders": "clip", "t2i_adapter": "controlnet"}


class UnsafePath(ValueError):
    """A requested path that would leave its folder (`..`, absolute, NUL, a symlink pointing out)."""


NAME_MAX = 255  # bytes in one file name on every common file system


def _check_part(part: str) -> None:
    if "\x00" in part:
        raise UnsafePath("path contains a NUL byte")
    if os.path.isabs(part) or part.startswith(("/", "\\")) or (len(part) > 1 and part[1] == ":"):
        raise UnsafePath(f"absolute paths are not allowed: {part!r}")
    segments = part.replace("\\", "/").split("/")
    if any(seg == ".." for seg in segments):
        raise UnsafePath(f"'..' is not allowed: {part!r}")
    if any(len(os.fsencode(seg)) > NAME_MAX for seg in segments):
        raise UnsafePath(f"a file or folder name is longer than {NAME_MAX} bytes: {part[:40]!r}...")


def lexically_confined(base: Path, *parts: str) -> Path:
    """`base/parts...` as written: no `..`, nothing absolute, no NUL; symlinks below `base` are not judged."""
    for part in parts:
        _check_part(part)
    return base.joinpath(*[p for p in parts if p])


def confined(base: Path, *parts: str) -> Path:
    """`base/parts...`, refusing anything that resolves outside `base` (symlinks included)."""
    root = base.resolve()
    target = lexically_confined(root, *parts).resolve()
    if target != root and root not in target.parents:
        raise UnsafePath("path leaves its folder")
    return target


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Folders:
    """The folders of one Loom instance; built once at start-up from the command line and config."""

    base: Path
    input: Path
    output: Path
    temp: Path
    user: Path
    models: dict[str, list[Path]] = field(default_factory=dict)
    custom_nodes: list[Path] = field(default_factory=list)

    @classmethod
    def under(cls, base: Path, models_dir: Path | None = None, **overrides: Path | None) -> Folders:
        """The default layout below `base` (input/, output/, temp/, user/, models/<folder>/, custom_nodes/)."""
        base = Path(base).resolve()
        models_root = Path(models_dir).resolve() if models_dir else base / "models"
        dirs = {name: overrides.get(name) or base / name for name in ("input", "output", "temp", "user")}
        return cls(
            base=base,
            input=Path(dirs["input"]).resolve(),
            output=Path(dirs["output"]).resolve(),
            temp=Path(dirs["temp"]).resolve(),
            user=Path(dirs["user"]).resolve(),
            models={name: [models_root / name] for name in MODEL_FOLDERS},
            custom_nodes=[base / "custom_nodes"],
        )

    def ensure(self) -> None:
        """Create every folder Loom writes to or lists (idempotent)."""
        for path in (self.input, self.output, self.temp, self.user):
            path.mkdir(parents=True, exist_ok=True)
        for paths in self.models.values():
            if paths:
                paths[0].mkdir(parents=True, exist_ok=True)

    def canonical(self, folder: str) -> str:
        return FOLDER_ALIASES.get(folder, folder)

    def model_dirs(self, folder: str) -> list[Path]:
        return self.models.get(self.canonical(folder), [])

    def add_model_path(self, folder: str, path: Path, first: bool = False) -> None:
        paths = self.models.setdefault(self.canonical(folder), [])
        path = Path(path).resolve()
        if path not in paths:
            paths.insert(0, path) if first else paths.append(path)

    def iter_model_files(
        self, folder: str, extensions: Iterable[str] = MODEL_EXTENSIONS
    ) -> Iterator[tuple[str, int, Path]]:
        """(name with `/` for subfolders, index of the folder path, path) for every file of a model folder, first
        path's first. Symlinked files and folders are followed (users link model trees between tools); a link
        cycle is walked once."""
        exts = {e.lower() for e in extensions}
        for index, root in enumerate(self.model_dirs(folder)):
            if not root.is_dir():
                continue
            seen: set[Path] = set()
            for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
                real = Path(dirpath).resolve()
                if real in seen:
                    dirnames[:] = []
                    continue
                seen.add(real)
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                rel = Path(dirpath).relative_to(root)
                for name in sorted(filenames):
                    if Path(name).suffix.lower() in exts:
                        yield (rel / name).as_posix(), index, Path(dirpath) / name

    def list_models(self, folder: str, extensions: Iterable[str] = MODEL_EXTENSIONS) -> list[str]:
        """File names (with `/` for subfolders) under every path of a model folder, sorted, first path wins."""
        return [name for name, _ in self.model_entries(folder, extensions)]

    def model_entries(self, folder: str, extensions: Iterable[str] = MODEL_EXTENSIONS) -> list[tuple[str, int]]:
        """(file name, index of the folder path it was found in), sorted by name; the first path wins."""
        names: dict[str, int] = {}
        for name, index, _ in self.iter_model_files(folder, extensions):
            names.setdefault(name, index)
        return sorted(names.items())

    def model_path(self, folder: str, name: str) -> Path | None:
        """The full path of a listed model file, or None.

        The name is confined to the folder as written (no `..`, nothing absolute); links inside the models tree are
        the user's own and are followed wherever they point.
        """
        for root in self.model_dirs(folder):
            try:
                path = lexically_confined(root, name)
            except UnsafePath:
                return None
            if path.is_file():
                return path
        return None

    def typed_dir(self, kind: str) -> Path:
        """The folder for `type=input|output|temp` in the API."""
        dirs = {"input": self.input, "output": self.output, "temp": self.temp}
        if kind not in dirs:
            raise UnsafePath(f"unknown folder type {kind!r}; expected input, output or temp")
        return dirs[kind]


def apply_extra_model_paths(folders: Folders, config: Mapping[str, Any], config_dir: Path) -> None:
    """Apply an extra_model_paths.yaml document: sections mapping folder names to one path or several (one a line),
    with an optional `base_path`; relative paths resolve against base_path, else against the YAML's own folder."""
    for section_name, section in config.items():
        if not isinstance(section, Mapping):
            raise ValueError(f"extra model paths: section {section_name!r} must be a mapping")
        base = Path(str(section.get("base_path", ""))).expanduser()
        root = base if base.is_absolute() else (config_dir / base)
        for key, value in section.items():
            if key in ("base_path", "is_default"):
                continue
            entries = value if isinstance(value, list) else str(value).splitlines()
            for entry in entries:
                entry = str(entry).strip()
                if not entry:
                    continue
                path = Path(entry).expanduser()
                path = path if path.is_absolute() else root / path
                if key == "custom_nodes":
                    folders.custom_nodes.append(path.resolve())
                else:
                    folders.add_model_path(key, path, first=bool(section.get("is_default")))
