"""Model index figures: scanning and hashing a large model tree (sparse files, so no disk is used), and the extra
start-up time of a scan when every hash is already cached.

    .venv/bin/python bench/model_index.py [--total-gb 20] [--big-files 10] [--small-files 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from catalog.hashes import HashCache
from catalog.index import ModelIndex
from engine.folders import Folders


def sparse_tree(root: Path, count: int, size: int, folder: str) -> Folders:
    folders = Folders.under(root)
    target = folders.model_dirs(folder)[0]
    target.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        with open(target / f"model-{i:04d}.safetensors", "wb") as fh:
            fh.truncate(size)
            fh.seek(size - 8)
            fh.write(i.to_bytes(8, "little"))
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-gb", type=float, default=20.0)
    parser.add_argument("--big-files", type=int, default=10)
    parser.add_argument("--small-files", type=int, default=1000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        size = int(args.total_gb * (1 << 30) / args.big_files)
        folders = sparse_tree(root / "big", args.big_files, size, "checkpoints")
        index = ModelIndex(folders, HashCache(root / "big.db"))
        start = time.perf_counter()
        index.scan()
        scanned = time.perf_counter() - start
        start = time.perf_counter()
        hashed = index.hash_pending()
        took = time.perf_counter() - start
        print(
            f"index {args.big_files} files, {args.total_gb:.1f} GiB: scan {scanned * 1e3:.1f} ms, "
            f"hash {took:.1f} s ({args.total_gb / took:.2f} GiB/s, {hashed} files)"
        )

        folders = sparse_tree(root / "many", args.small_files, 4096, "loras")
        cache = HashCache(root / "many.db")
        cold = ModelIndex(folders, cache)
        cold.scan()
        cold.hash_pending()
        times = []
        for _ in range(5):
            warm = ModelIndex(folders, HashCache(root / "many.db"))
            start = time.perf_counter()
            warm.scan()
            times.append(time.perf_counter() - start)
            assert not warm.pending()
        print(
            f"warm start-up scan of {args.small_files} files with cached hashes: "
            f"median {statistics.median(times) * 1e3:.1f} ms (target < 50 ms)"
        )


if __name__ == "__main__":
    main()
