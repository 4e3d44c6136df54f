"""`folder_paths` for node packs: model folders, input/output/temp directories and file-name helpers.

Backed by the `Folders` of the running Loom (compat.host), so what a pack lists and resolves is what Loom's own
loaders see. `models_dir`, `base_path`, `folder_names_and_paths` and the `*_directory` names are read live.

Older packs find "the host's folder" as `os.path.dirname(folder_paths.__file__)` and copy their scripts into its
`web/extensions/`. Here `__file__` names a file in the user folder (compat.host.host_root), so those copies land
there, never in Loom's source tree, and Loom serves that `web/extensions/` like a pack's WEB_DIRECTORY.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

from compat.host import bound, current, host_root, refuse
from engine.folders import MODEL_EXTENSIONS, UnsafePath, confined

supported_pt_extensions: set[str] = {*MODEL_EXTENSIONS, ".pkl", ".pt2"}

if (_host := bound()) is not None:
    (host_root(_host.folders) / "web" / "extensions").mkdir(parents=True, exist_ok=True)
    __file__ = str(host_root(_host.folders) / "folder_paths.py")

_ANNOTATIONS = {"[output]": "output", "[input]": "input", "[temp]": "temp"}


def get_folder_paths(folder_name: str) -> list[str]:
    return [str(p) for p in current().folders.model_dirs(folder_name)]


def _extensions(folder_name: str) -> set[str]:
    host = current()
    return host.extensions.get(host.folders.canonical(folder_name), supported_pt_extensions)


def get_filename_list(folder_name: str) -> list[str]:
    """File names (with `/` for subfolders) in a model folder, sorted; empty for a folder nobody declared."""
    return current().folders.list_models(folder_name, _extensions(folder_name))


def get_full_path(folder_name: str, filename: str) -> str | None:
    path = current().folders.model_path(folder_name, filename)
    return str(path) if path is not None else None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    path = get_full_path(folder_name, filename)
    if path is None:
        raise FileNotFoundError(f"model {filename!r} not found in folder {folder_name!r}")
    return path


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    current().folders.add_model_path(folder_name, Path(full_folder_path), first=is_default)


def filter_files_extensions(files: Iterable[str], extensions: Iterable[str]) -> list[str]:
    """The files whose extension is listed (all of them when none is), sorted."""
    exts = {e.lower() for e in extensions}
    return sorted(f for f in files if not exts or os.path.splitext(f)[1].lower() in exts)


def get_input_directory() -> str:
    return str(current().folders.input)


def get_output_directory() -> str:
    return str(current().folders.output)


def get_temp_directory() -> str:
    return str(current().folders.temp)


def get_user_directory() -> str:
    return str(current().folders.user)


def get_directory_by_type(type_name: str) -> str | None:
    try:
        return str(current().folders.typed_dir(type_name))
    except UnsafePath:
        return None


def annotated_filepath(name: str) -> tuple[str, str | None]:
    """Split `"a.png [output]"` into the name and the folder type it names (None when it names none)."""
    for suffix, kind in _ANNOTATIONS.items():
        if name.endswith(" " + suffix):
            return name[: -len(suffix) - 1], kind
    return name, None


def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
    """The full path of an annotated file name; the input folder (or `default_dir`) when it has no annotation."""
    name, kind = annotated_filepath(name)
    if kind is not None:
        base = current().folders.typed_dir(kind)
    else:
        base = Path(default_dir) if default_dir is not None else current().folders.input
    return str(confined(base, name))


def exists_annotated_filepath(name: str) -> bool:
    try:
        return os.path.exists(get_annotated_filepath(name))
    except UnsafePath:
        return False


def get_save_image_path(
    filename_prefix: str, output_dir: str, image_width: int = 0, image_height: int = 0
) -> tuple[str, str, int, str, str]:
    """Where the next image of a save node goes: (folder, file-name stem, counter, subfolder, prefix).

    The prefix may hold a subfolder (`"portraits/img"`) and the tokens %width%, %height%, %year%, %month%, %day%,
    %hour%, %minute%, %second%; the counter is one past the highest `<stem>_NNNNN_` already in the folder.
    """
    filename_prefix = _expand_tokens(filename_prefix, image_width, image_height)
    subfolder, filename = os.path.split(os.path.normpath(filename_prefix))
    folder = confined(Path(output_dir), subfolder) if subfolder else Path(output_dir).resolve()
    pattern = re.compile(re.escape(filename) + r"_(\d+)_?")
    counters = [0]
    if folder.is_dir():
        for entry in os.listdir(folder):
            match = pattern.match(entry)
            if match:
                counters.append(int(match.group(1)))
    return str(folder), filename, max(counters) + 1, subfolder, filename_prefix


def _expand_tokens(text: str, width: int, height: int) -> str:
    now = time.localtime()
    tokens = {
        "%width%": str(width),
        "%height%": str(height),
        "%year%": f"{now.tm_year}",
        "%month%": f"{now.tm_mon:02}",
        "%day%": f"{now.tm_mday:02}",
        "%hour%": f"{now.tm_hour:02}",
        "%minute%": f"{now.tm_min:02}",
        "%second%": f"{now.tm_sec:02}",
    }
    for token, value in tokens.items():
        text = text.replace(token, value)
    return text


class FolderTable(MutableMapping[str, tuple[list[str], set[str]]]):
    """`folder_names_and_paths`: folder name -> (paths, extensions), writing through to Loom's folders."""

    def __getitem__(self, folder_name: str) -> tuple[list[str], set[str]]:
        host = current()
        if host.folders.canonical(folder_name) not in host.folders.models:
            raise KeyError(folder_name)
        return get_folder_paths(folder_name), _extensions(folder_name)

    def __setitem__(self, folder_name: str, value: tuple[Iterable[str], Iterable[str]]) -> None:
        paths, extensions = value
        host = current()
        canonical = host.folders.canonical(folder_name)
        host.folders.models[canonical] = []
        for path in paths:
            host.folders.add_model_path(canonical, Path(path))
        host.extensions[canonical] = {e.lower() for e in extensions} or set()

    def __delitem__(self, folder_name: str) -> None:
        host = current()
        del host.folders.models[host.folders.canonical(folder_name)]

    def __iter__(self) -> Iterator[str]:
        return iter(list(current().folders.models))

    def __len__(self) -> int:
        return len(current().folders.models)


_LIVE: dict[str, Any] = {
    "base_path": lambda f: str(f.base),
    "models_dir": lambda f: str(_models_root(f.model_dirs("checkpoints"), f.base)),
    "output_directory": lambda f: str(f.output),
    "input_directory": lambda f: str(f.input),
    "temp_directory": lambda f: str(f.temp),
    "user_directory": lambda f: str(f.user),
    "folder_names_and_paths": lambda f: FolderTable(),
}


def __getattr__(name: str) -> Any:
    if name in _LIVE:
        return _LIVE[name](current().folders)
    refuse("folder_paths", name)


def _models_root(checkpoint_dirs: list[Path], base: Path) -> Path:
    return checkpoint_dirs[0].parent if checkpoint_dirs else base / "models"
