"""The user folder: one subfolder per user holding the front end's settings (`comfy.settings.json`) and its user
data (saved workflows, templates, key bindings...).

Single-user mode (the default) keeps everything in `user/default/`; with `--multi-user` the `Comfy-User` header
names the user, who must have been created with `POST /users` (recorded in `user/users.json`). Every path a request
names goes through `engine.folders.confined`, so nothing leaves the user's own folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.folders import UnsafePath, confined, write_atomic
from server.http import BadRequest

DEFAULT_USER = "default"
SETTINGS_FILE = "comfy.settings.json"
USERS_FILE = "users.json"


def file_info(path: Path, relative_to: Path) -> dict[str, Any]:
    """`{path, size, modified, created}` of one file (times in epoch milliseconds, as the reference answers), its
    path relative to `relative_to` with `/` separators."""
    stat = path.stat()
    return {
        "path": path.relative_to(relative_to).as_posix(),
        "size": stat.st_size,
        "modified": int(stat.st_mtime * 1000),
        "created": int(stat.st_ctime * 1000),
    }


@dataclass
class UserFiles:
    """The users and their files under `root` (the `user` folder of Folders)."""

    root: Path
    multi_user: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ---- users ----

    def users(self) -> dict[str, str]:
        """User id -> user name, as recorded in users.json (multi-user mode)."""
        path = self.root / USERS_FILE
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def add_user(self, name: str) -> str:
        """Create a user; its id is the name made path-safe plus a unique suffix."""
        if not self.multi_user:
            raise BadRequest("users can only be created when Loom runs with --multi-user", "invalid_request")
        name = name.strip()
        if not name:
            raise BadRequest("'username' must be a non-empty string", "invalid_request")
        with self._lock:
            users = self.users()
            if name in users.values():
                raise BadRequest(f"a user named {name!r} already exists", "duplicate_user", 400)
            user_id = f"{re.sub(r'[^A-Za-z0-9_-]+', '-', name)}_{uuid.uuid4().hex[:12]}"
            users[user_id] = name
            self.root.mkdir(parents=True, exist_ok=True)
            write_atomic(self.root / USERS_FILE, json.dumps(users, indent=2).encode())
        return user_id

    def user_id(self, header: str | None) -> str:
        """The user a request acts for: the `Comfy-User` header in multi-user mode, else the default user."""
        if not self.multi_user or not header:
            return DEFAULT_USER
        if header != DEFAULT_USER and header not in self.users():
            raise BadRequest(f"unknown user {header!r}; create it with POST /users", "unknown_user", 400)
        return header

    def user_dir(self, user: str) -> Path:
        try:
            return confined(self.root, user)
        except UnsafePath as exc:  # user ids are checked above; this guards the folder name itself
            raise BadRequest(str(exc), "invalid_path") from exc

    def path(self, user: str, rel: str) -> Path:
        """`rel` inside the user's folder; never the folder itself, never outside it."""
        if not rel or not rel.strip("/"):
            raise BadRequest("a file path is required", "invalid_path")
        base = self.user_dir(user)
        try:
            path = confined(base, rel)
        except UnsafePath as exc:
            raise BadRequest(str(exc), "invalid_path") from exc
        if path == base.resolve():
            raise BadRequest("a file path is required", "invalid_path")
        return path

    # ---- settings ----

    def settings(self, user: str) -> dict[str, Any]:
        path = self.user_dir(user) / SETTINGS_FILE
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise BadRequest(f"{SETTINGS_FILE} is not valid JSON: {exc}", "invalid_settings", 500) from exc
        return data if isinstance(data, dict) else {}

    def update_settings(self, user: str, values: dict[str, Any]) -> None:
        """Merge `values` into the user's settings; the file is replaced atomically."""
        with self._lock:
            merged = {**self.settings(user), **values}
            folder = self.user_dir(user)
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(folder / SETTINGS_FILE, json.dumps(merged, indent=4).encode())

    # ---- files ----

    def list_files(self, user: str, directory: str, recurse: bool, full_info: bool, split: bool) -> list[Any]:
        """The files under `directory` (relative to it), for `GET /userdata`."""
        base = self.path(user, directory)
        if not base.is_dir():
            raise BadRequest(f"no folder {directory!r} in the user folder", "not_found", 404)
        found = base.rglob("*") if recurse else base.iterdir()
        files = sorted(p for p in found if p.is_file())
        if full_info:
            return [file_info(p, base) for p in files]
        names = [p.relative_to(base).as_posix() for p in files]
        return [[name, *name.split("/")] for name in names] if split else names

    def list_dir(self, user: str, rel: str) -> list[dict[str, Any]]:
        """One folder's entries, files and folders, for `GET /v2/userdata`; a user folder not made yet is empty."""
        base = self.user_dir(user)
        folder = self.path(user, rel) if rel else base.resolve()
        if folder == base.resolve() and not folder.exists():
            return []
        if not folder.exists():
            raise BadRequest(f"no folder {rel!r} in the user folder", "not_found", 404)
        if not folder.is_dir():
            raise BadRequest(f"{rel!r} is a file, not a folder", "invalid_path")
        entries: list[dict[str, Any]] = []
        for child in sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name)):
            rel_path = child.relative_to(base.resolve()).as_posix()
            if child.is_dir():
                entries.append({"name": child.name, "path": rel_path, "type": "directory"})
            elif child.is_file():
                stat = child.stat()
                entry = {"name": child.name, "path": rel_path, "type": "file", "size": stat.st_size}
                entries.append({**entry, "modified": stat.st_mtime})
        return entries

    def read(self, user: str, rel: str) -> Path:
        path = self.path(user, rel)
        if not path.is_file():
            raise BadRequest(f"no file {rel!r} in the user folder", "not_found", 404)
        return path

    def write(self, user: str, rel: str, data: bytes, overwrite: bool) -> Path:
        """Store `data` at `rel` (409 when it exists and `overwrite` is false)."""
        path = self.path(user, rel)
        with self._lock:
            self._claim(user, rel, path, overwrite)
            write_atomic(path, data)
        return path

    def delete(self, user: str, rel: str) -> None:
        path = self.read(user, rel)
        path.unlink()

    def move(self, user: str, source: str, dest: str, overwrite: bool) -> Path:
        src = self.read(user, source)
        target = self.path(user, dest)
        with self._lock:
            self._claim(user, dest, target, overwrite)
            shutil.move(src, target)
        return target

    def _claim(self, user: str, rel: str, path: Path, overwrite: bool) -> None:
        """Make `path` ready to be written: 409 when it is a folder, or exists and may not be overwritten; create
        the folders above it, refusing when a symlink among them leads out of the user folder."""
        if path.is_dir():
            raise BadRequest(f"{rel!r} is a folder", "invalid_path", 409)
        if path.exists() and not overwrite:
            raise BadRequest(f"{rel!r} already exists", "file_exists", 409)
        base = self.user_dir(user)
        base.mkdir(parents=True, exist_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            confined(base, os.path.relpath(path.parent.resolve(), base.resolve()))
        except UnsafePath as exc:
            raise BadRequest(str(exc), "invalid_path") from exc
