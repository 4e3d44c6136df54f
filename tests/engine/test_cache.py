from __future__ import annotations

from engine.cache import ENTRY_OVERHEAD, OutputCache, estimate_nbytes


class FakeTensor:
    def __init__(self, numel: int, size: int = 4) -> None:
        self._numel, self._size = numel, size

    def element_size(self) -> int:
        return self._size

    def numel(self) -> int:
        return self._numel


class FakeModel:
    def loom_nbytes(self) -> int:
        return 10_000


class FakeModule:
    def parameters(self):
        return iter([FakeTensor(100), FakeTensor(50, 2)])


class Arrayish:
    nbytes = 777


def test_estimates_by_duck_typing() -> None:
    assert estimate_nbytes(FakeTensor(1000)) == 4000
    assert estimate_nbytes(FakeModel()) == 10_000
    assert estimate_nbytes(FakeModule()) == 500
    assert estimate_nbytes(Arrayish()) == 777
    assert estimate_nbytes({"samples": FakeTensor(10)}) >= 40
    assert estimate_nbytes([FakeTensor(10), FakeTensor(10)]) >= 80


def test_lru_eviction_under_a_memory_bound() -> None:
    cache = OutputCache(max_bytes=3 * (ENTRY_OVERHEAD + 56 + 1000))
    for key in (b"a", b"b", b"c"):
        cache.put(key, (FakeTensor(250),))
    assert len(cache) == 3 and cache.stats().evictions == 0
    assert cache.get(b"a") is not None  # a is now the most recent
    cache.put(b"d", (FakeTensor(250),))
    assert b"b" not in cache and b"a" in cache and b"d" in cache
    stats = cache.stats()
    assert stats.evictions == 1 and stats.entries == 3 and stats.hits == 1 and stats.bytes <= cache.max_bytes


def test_pinned_entries_survive_until_unpinned() -> None:
    cache = OutputCache(max_bytes=0)
    cache.pin([b"a", b"b"])
    cache.put(b"a", (1,))
    cache.put(b"b", (2,))
    cache.put(b"c", (3,))
    assert b"a" in cache and b"b" in cache and b"c" not in cache
    cache.unpin_all()
    assert len(cache) == 0 and cache.bytes == 0


def test_entry_bound_stats_and_clear() -> None:
    cache = OutputCache(max_entries=2)
    for key in (b"a", b"b", b"c"):
        cache.put(key, (1,), {"text": ["hi"]})
    assert len(cache) == 2 and cache.get(b"a") is None and cache.stats().misses == 1
    assert cache.get(b"c").ui == {"text": ["hi"]}
    cache.clear()
    assert len(cache) == 0 and cache.stats().bytes == 0


def test_trivial_entries_are_estimated_small() -> None:
    cache = OutputCache()
    cache.put(b"k" * 16, (5,))
    assert cache.bytes < 2048


def test_classic_mode_keeps_only_what_the_last_job_pinned() -> None:
    cache = OutputCache(classic=True)
    for key in (b"a", b"b", b"c"):
        cache.put(key, (1,))
    cache.pin([b"b", b"new"])
    cache.put(b"new", (2,))
    assert cache.get(b"a") is not None  # nothing is dropped while the job runs
    cache.unpin_all()
    assert set(cache.keys()) == {b"b", b"new"}
    cache.unpin_all()  # a job that pinned nothing (an empty prompt) leaves nothing behind
    assert len(cache) == 0
