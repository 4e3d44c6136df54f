"""The output cache: node outputs keyed by signature, bounded by an estimate of the memory they hold."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ENTRY_OVERHEAD = 240  # bytes an entry costs besides its values: key, entry object, dict slot
DEFAULT_MAX_BYTES = 8 << 30
_SCALARS = frozenset({int, float, bool, type(None)})


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    bytes: int
    entries: int
    max_bytes: int | None


class CacheEntry:
    __slots__ = ("nbytes", "outputs", "ui")

    def __init__(self, outputs: tuple[Any, ...], ui: dict[str, Any] | None, nbytes: int) -> None:
        self.outputs = outputs
        self.ui = ui
        self.nbytes = nbytes


def estimate_nbytes(value: Any, _depth: int = 0) -> int:
    """The memory a value holds, by duck typing (the engine imports no torch): `loom_nbytes()` (models, wrappers),
    `.nbytes` (arrays, tensors), `element_size() * numel()`, `parameters()` (modules); containers are summed."""
    kind = type(value)
    if kind in _SCALARS:
        return 0
    if kind is tuple and _depth < 8:
        return 56 + sum(0 if type(v) in _SCALARS else estimate_nbytes(v, _depth + 1) for v in value)
    if isinstance(value, bool | int | float):
        return 0
    if isinstance(value, str | bytes | bytearray):
        return len(value)
    custom = getattr(value, "loom_nbytes", None)
    if callable(custom):
        return int(custom())
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    element_size, numel = getattr(value, "element_size", None), getattr(value, "numel", None)
    if callable(element_size) and callable(numel):
        return int(element_size()) * int(numel())
    if _depth > 8:
        return 64
    if isinstance(value, Mapping):
        return 64 + sum(estimate_nbytes(v, _depth + 1) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return 56 + sum(estimate_nbytes(v, _depth + 1) for v in value)
    parameters = getattr(value, "parameters", None)
    if callable(parameters):
        try:
            return sum(estimate_nbytes(p, _depth + 1) for p in parameters())
        except TypeError:
            return 64
    return 64


class OutputCache:
    """LRU over signatures. `max_bytes` bounds the estimated memory (0 keeps nothing between jobs) and `max_entries`
    the entry count; entries pinned by the running job are never evicted, so a job may overshoot until it unpins.
    `classic`: when a job ends, only what it pinned (the outputs of its own prompt) is kept, as the reference
    engine's default cache does."""

    def __init__(
        self, max_bytes: int | None = DEFAULT_MAX_BYTES, max_entries: int | None = None, classic: bool = False
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.classic = classic
        self._entries: OrderedDict[bytes, CacheEntry] = OrderedDict()
        self._pinned: set[bytes] = set()
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: bytes) -> CacheEntry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            self._entries.move_to_end(key)
            return entry

    def put(self, key: bytes, outputs: tuple[Any, ...], ui: dict[str, Any] | None = None) -> None:
        nbytes = ENTRY_OVERHEAD + (estimate_nbytes(outputs) if outputs else 0) + (estimate_nbytes(ui) if ui else 0)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old.nbytes
            self._entries[key] = CacheEntry(outputs, ui, nbytes)
            self.bytes += nbytes
            self._evict()

    def pin(self, keys: Iterable[bytes]) -> None:
        with self._lock:
            self._pinned.update(keys)

    def unpin_all(self) -> None:
        """The job ended: its entries become evictable and the bounds apply again (in classic mode every entry it
        did not pin is dropped first)."""
        with self._lock:
            if self.classic:
                self._drop_unpinned()
            self._pinned.clear()
            self._evict()

    def _evict(self) -> None:
        """Drop least recently used unpinned entries until within bounds (call with the lock held)."""
        max_bytes, max_entries = self.max_bytes, self.max_entries
        nbytes, count = self.bytes, len(self._entries)
        if (max_bytes is None or nbytes <= max_bytes) and (max_entries is None or count <= max_entries):
            return
        victims = []
        for key, entry in self._entries.items():
            if (max_bytes is None or nbytes <= max_bytes) and (max_entries is None or count <= max_entries):
                break
            if key in self._pinned:
                continue
            victims.append(key)
            nbytes -= entry.nbytes
            count -= 1
        for key in victims:
            del self._entries[key]
        self.bytes = nbytes
        self.evictions += len(victims)

    def clear(self) -> None:
        """Drop every entry that the running job does not pin (POST /free)."""
        with self._lock:
            self._drop_unpinned()

    def _drop_unpinned(self) -> None:
        for key in [k for k in self._entries if k not in self._pinned]:
            self.bytes -= self._entries.pop(key).nbytes

    def keys(self) -> list[bytes]:
        """The signatures held, least recently used first (what a scale-out worker reports to the scheduler)."""
        with self._lock:
            return list(self._entries)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self.hits, self.misses, self.evictions, self.bytes, len(self._entries), self.max_bytes)
