"""The chunk cache: byte budget, LRU order, counters, and one load per key under races."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vfs.cache import ChunkCache


def test_budget_lru_and_counters():
    cache = ChunkCache(budget=3000)
    for k in range(5):
        cache.get(("f", k), lambda k=k: np.full(100, k, np.float64), "d")  # 800 bytes each
    assert cache.currsize <= 3000
    assert cache.stats()["chunk_loads"] == {"d": 5}
    hit = cache.get(("f", 4), lambda: np.zeros(1), "d")
    assert hit[0] == 4 and cache.hits == 1
    cache.get(("f", 0), lambda: np.zeros(100), "d")  # evicted earlier: loaded again
    assert cache.stats()["chunk_loads"] == {"d": 6}
    big = cache.get(("f", "big"), lambda: np.zeros(10_000), "d")  # larger than the budget: served, not kept
    assert big.size == 10_000 and cache.currsize <= 3000


def test_reservations_and_parts_come_out_of_the_budget():
    cache = ChunkCache(budget=8000)
    for k in range(9):
        cache.get(("f", k), lambda k=k: np.full(100, k, np.float64), "d")  # 800 bytes each
    assert len(cache.stats()["recent_loads"]) == 9 and cache.currsize == 7200
    cache.reserve("files", 3000)  # 5000 left: the oldest chunks go now
    assert cache.budget == 5000 and cache.currsize == 4800 and cache.peek(("f", 2)) is None
    part = cache.share("tables", 2000)
    assert part is cache.share("tables", 2000) and part.budget == 2000
    assert cache.budget == 5000  # a share takes out what it holds, nothing yet
    for k in range(4):
        part.get(("t", k), lambda: np.zeros(100), "tables")  # 800 bytes each: two fit
    assert part.summary() == {"budget": 2000, "bytes": 1600, "peak_bytes": 1600, "entries": 2, "hits": 0,
                              "misses": 4, "loads": 4}
    assert cache.budget == 3400
    cache.get(("f", 9), lambda: np.zeros(100), "d")  # the next chunk in: down to the budget
    assert cache.currsize == 3200 and cache.peek(("f", 9)) is not None and cache.peek(("f", 5)) is None
    stats = cache.stats()
    assert stats["reserved"] == {"files": 3000, "tables": 2000} and stats["cache_size"] == 8000
    assert stats["shares"]["tables"]["entries"] == 2 and stats["peak_bytes"] == 7200
    held = [500]
    cache.reserve("files", 3000, lambda: held[0])  # what the files hold now, up to 3000
    assert cache.budget == 8000 - 500 - 1600
    held[0] = 10_000
    assert cache.budget == 8000 - 3000 - 1600


def test_chunks_of_the_read_in_progress_are_kept():
    """A read that needs more chunks than fit keeps those it has (not the newest), so
    the next read of the same chunks decodes only the ones that did not fit."""
    cache = ChunkCache(budget=4000)  # five chunks of 800 bytes fit, not six
    row = [("f", k) for k in range(6)]
    keep = frozenset(row)
    loads = []

    def read_row() -> None:
        for key in row:
            cache.get(key, lambda key=key: (loads.append(key), np.full(100, key[1], np.float64))[1], "d", keep)

    read_row()
    assert len(loads) == 6 and cache.currsize == 4000
    assert [cache.peek(key) is not None for key in row] == [True] * 5 + [False]
    read_row()  # the same row again: only the one that did not fit is decoded again
    assert len(loads) == 7
    loads.clear()
    for key in row:  # without keep: least recently used first, every read decodes all six
        cache.get(key, lambda key=key: (loads.append(key), np.zeros(100))[1], "d")
    for key in row:
        cache.get(key, lambda key=key: (loads.append(key), np.zeros(100))[1], "d")
    assert len(loads) >= 7


def test_concurrent_misses_of_one_key_load_once():
    cache = ChunkCache(budget=1 << 20)
    calls = []

    def slow_load():
        calls.append(1)
        time.sleep(0.2)
        return np.arange(10)

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("k", slow_load, "x"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert all((r == np.arange(10)).all() for r in results) and len(results) == 8


def test_a_failed_load_lets_the_next_caller_try_again():
    cache = ChunkCache(budget=1 << 20)
    calls = []

    def broken():
        calls.append(1)
        raise OSError("decoder failed")

    for attempt in range(2):
        with pytest.raises(OSError, match="decoder failed"):
            cache.get("k", broken, "x")
        assert len(calls) == attempt + 1  # the failure was not remembered: the loader ran again
    assert not cache.has("k")
    assert cache.get("k", lambda: np.ones(2), "x").sum() == 2


def test_a_chunk_too_big_to_keep_is_loaded_once_per_read():
    """A read whose boxes share one chunk the cache cannot keep takes it once."""
    from tests.arraysupport import ArrayChunks

    values = np.arange(8 * 1000, dtype=np.float64).reshape(8, 1000)
    source = ArrayChunks(values, (8, 1000), ChunkCache(budget=1000))  # the 64 KB chunk never fits
    got = source.read_flat(1500, 5500)  # a partial row, whole rows, a partial row: three boxes
    assert got.tobytes() == values.reshape(-1)[1500:5500].tobytes()
    assert source.loaded == [(0, 0)]
    source.read_flat(1500, 5500)
    assert source.loaded == [(0, 0), (0, 0)]  # not kept: loaded again by the next read

