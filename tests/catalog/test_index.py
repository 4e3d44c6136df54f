"""The model index over real files: symlinks followed, hashes cached across restarts, AutoV2 lookups."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from catalog.hashes import HashCache, autov2, sha256_file
from catalog.index import ModelIndex
from engine.folders import Folders


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


class CountingHasher:
    def __init__(self) -> None:
        self.calls: list[Path] = []

    def __call__(self, path: Path) -> str:
        self.calls.append(path)
        return sha256_file(path)


def test_index_lists_files_with_sizes_and_hashes(tmp_path: Path) -> None:
    folders = Folders.under(tmp_path)
    digest = _write(folders.model_dirs("checkpoints")[0] / "sub" / "a.safetensors", b"weights-a")
    _write(folders.model_dirs("loras")[0] / "b.pt", b"lora-b")
    _write(folders.model_dirs("loras")[0] / "notes.txt", b"not a model")
    index = ModelIndex(folders, HashCache(tmp_path / "idx.db"))
    index.scan()
    assert [(f.folder, f.name, f.size) for f in index.files()] == [
        ("checkpoints", "sub/a.safetensors", 9),
        ("loras", "b.pt", 6),
    ]
    assert index.hash_pending() == 2
    entry = index.files("checkpoints")[0]
    assert entry.sha256 == digest and entry.as_json()["autov2"] == autov2(digest) == digest[:10]
    assert [f.name for f in index.by_hash(digest[:10].upper(), "checkpoints")] == ["sub/a.safetensors"]
    assert index.by_hash(digest, "loras") == []


def test_restart_hashes_nothing_again_until_a_file_changes(tmp_path: Path) -> None:
    folders = Folders.under(tmp_path)
    ckpt = folders.model_dirs("checkpoints")[0] / "a.safetensors"
    _write(ckpt, b"one")
    _write(folders.model_dirs("vae")[0] / "v.safetensors", b"two")
    first = CountingHasher()
    index = ModelIndex(folders, HashCache(tmp_path / "idx.db", hasher=first))
    index.scan()
    index.hash_pending()
    assert len(first.calls) == 2

    again = CountingHasher()
    restarted = ModelIndex(folders, HashCache(tmp_path / "idx.db", hasher=again))
    restarted.scan()
    assert restarted.pending() == [] and restarted.hash_pending() == 0 and again.calls == []

    new_digest = _write(ckpt, b"changed content")
    os.utime(ckpt, ns=(1, 1))
    restarted.scan()
    assert [f.name for f in restarted.pending()] == ["a.safetensors"]
    restarted.hash_pending()
    assert again.calls == [ckpt] and restarted.files("checkpoints")[0].sha256 == new_digest


def test_symlinked_folders_and_files_are_indexed_once(tmp_path: Path) -> None:
    shared = tmp_path / "elsewhere"
    _write(shared / "linked.safetensors", b"x")
    _write(tmp_path / "single.safetensors", b"y")
    folders = Folders.under(tmp_path / "loom")
    root = folders.model_dirs("checkpoints")[0]
    root.mkdir(parents=True)
    (root / "shared").symlink_to(shared, target_is_directory=True)
    (root / "one.safetensors").symlink_to(tmp_path / "single.safetensors")
    (shared / "loop").symlink_to(shared, target_is_directory=True)
    index = ModelIndex(folders, None)
    index.scan()
    assert [f.name for f in index.files("checkpoints")] == ["one.safetensors", "shared/linked.safetensors"]
    assert folders.model_path("checkpoints", "shared/linked.safetensors") == root / "shared" / "linked.safetensors"
    assert folders.model_path("checkpoints", "one.safetensors") is not None
    assert folders.model_path("checkpoints", "../elsewhere/linked.safetensors") is None


def test_background_hashing_fills_the_index(tmp_path: Path) -> None:
    folders = Folders.under(tmp_path)
    digest = _write(folders.model_dirs("checkpoints")[0] / "a.safetensors", b"background")
    index = ModelIndex(folders, HashCache(tmp_path / "idx.db"))
    index.scan()
    index.start_background_hashing().join(timeout=30)
    assert index.files()[0].sha256 == digest
