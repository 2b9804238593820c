"""One byte-budgeted, thread-safe LRU of decoded chunks, shared by every backend.

Keys are ``(source identity, object name, chunk index)`` where the source identity is
``(device, inode, size, mtime_ns)`` of the file: a file that changes gets new keys, so
stale chunks are never served; old ones simply age out. Counters (hits, misses, chunk
loads per object) are what tests and benchmarks use to prove a read touched only the
chunks it needed.

``--cache-size`` is the budget of everything a walk can make grow that this process
keeps for speed: shares of it go to other byte-budgeted tables (``share``: a cache of
its own, such as HDF5 chunk offset tables) and to memory held elsewhere whose worst case
is known (``reserve``: open HDF5 files); decoded chunks get the rest. A reservation
counts what it holds now (a share its bytes, the open files their count), up to its
worst case, so a budget only part used by them is left to decoded chunks.

A read that needs more chunks at once than the budget holds (a row of big chunks
streamed with a small ``--cache-size``) keeps the ones it needs (``keep``) and does not
cache the rest, instead of pushing out the chunks it is about to need again: each later
read of that row decodes only the chunks that did not fit.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter, deque
from collections.abc import Callable, Collection, Hashable
from typing import Any

import numpy as np
from cachetools import LRUCache

from vfs.limits import MAX_COUNTER_KEYS

DEFAULT_BUDGET = 1 << 30


def _nbytes(value: Any) -> int:
    return int(getattr(value, "nbytes", None) or len(value))


class ChunkCache:
    """Decoded chunks (numpy arrays or bytes) under a total byte budget."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        #: the whole budget; reservations and shares are taken out of it
        self.total = budget
        self.reserved: dict[str, int] = {}
        #: what each reservation holds now (at most its ``reserved`` worst case)
        self.using: dict[str, Callable[[], int]] = {}
        self.shares: dict[str, ChunkCache] = {}
        self.reports: dict[str, Callable[[], Any]] = {}
        # no size limit of its own: ``_trim`` keeps it within the budget, choosing what goes
        self._lru: LRUCache[Hashable, Any] = LRUCache(maxsize=sys.maxsize, getsizeof=_nbytes)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.load_count = 0
        #: the most bytes held at once
        self.peak = 0
        self.loads: Counter[str] = Counter()
        self.recent: deque[str] = deque(maxlen=32)
        self.parts: Counter[str] = Counter()  # chunks decoded in part (not cached), per object
        self.part_bytes = 0
        self._loading: dict[Hashable, threading.Event] = {}

    @property
    def budget(self) -> int:
        """Bytes of decoded chunks: the whole budget less what the reservations hold."""
        held = sum(min(self.using[name](), cap) if name in self.using else cap for name, cap in self.reserved.items())
        return max(self.total - held, 0)

    def reserve(self, name: str, nbytes: int, using: Callable[[], int] | None = None) -> None:
        """Take up to ``nbytes`` out of the budget for memory held elsewhere (replacing
        an earlier reservation of that name): ``using()`` says how much it holds now (all
        of ``nbytes`` without it); chunks over the new budget are dropped."""
        with self._lock:
            self.reserved[name] = nbytes
            if using is not None:
                self.using[name] = using
            self._trim()

    def share(self, name: str, budget: int) -> ChunkCache:
        """A cache of its own with ``budget`` bytes, reserved out of this one (made once
        per name and budget)."""
        with self._lock:
            share = self.shares.get(name)
            if share is None or share.total != budget:
                share = self.shares[name] = ChunkCache(budget)
            self.reserved[name] = budget
            self.using[name] = share.held
            self._trim()
        return share

    def report(self, name: str, counters: Callable[[], Any]) -> None:
        """Add ``counters()`` to :meth:`stats` under ``name`` (a table kept elsewhere)."""
        self.reports[name] = counters

    def _trim(self, keep: Collection[Hashable] = (), newest: Hashable = None) -> None:
        """Drop least recently used chunks until the chunks fit the budget. Chunks in
        ``keep`` (those of the read in progress) go only when nothing else is left, and
        then ``newest`` (the one just added) goes instead of older ones."""
        budget = self.budget
        kept = []
        while len(self._lru) and self._lru.currsize > budget:
            key, value = self._lru.popitem()
            if key in keep and key != newest:
                kept.append((key, value))
        if kept:
            self._lru.pop(newest, None)
            for key, value in kept:  # oldest first
                if self._lru.currsize + _nbytes(value) <= budget:
                    self._lru[key] = value

    def peek(self, key: Hashable) -> Any:
        """The cached value for ``key`` or None; never loads (no counters change)."""
        with self._lock:
            return self._lru.get(key)

    def get(self, key: Hashable, load: Callable[[], Any], label: str = "", keep: Collection[Hashable] = ()) -> Any:
        """Return the cached value for ``key``, calling ``load`` (outside the cache lock)
        on a miss. Threads that miss the same key while it loads wait for that one load
        instead of decoding the chunk again. ``keep``: keys not to drop for this one."""
        while True:
            with self._lock:
                try:
                    value = self._lru[key]
                except KeyError:
                    pending = self._loading.get(key)
                    if pending is None:
                        self.misses += 1
                        pending = self._loading[key] = threading.Event()
                        break
                else:
                    self.hits += 1
                    return value
            pending.wait()  # another thread is loading it; then look again
            with self._lock:
                if key in self._lru:
                    self.hits += 1
                    return self._lru[key]
            # the load failed or did not fit: load it ourselves
        try:
            value = load()
            with self._lock:
                if label not in self.loads and len(self.loads) >= MAX_COUNTER_KEYS:
                    del self.loads[next(iter(self.loads))]  # bounded: the oldest label goes
                self.loads[label] += 1
                self.load_count += 1
                self.recent.append(f"{label} {key[-1] if isinstance(key, tuple) else key}")
                if _nbytes(value) <= self.budget:
                    self._lru[key] = value
                    self._trim(keep, key)
                    self.peak = max(self.peak, self.currsize)
            return value
        finally:
            with self._lock:
                self._loading.pop(key, None)
            pending.set()

    def count_part(self, label: str, nbytes: int) -> None:
        """Count a chunk decoded in part for one read (see ``ChunkedSource.load_part``)."""
        with self._lock:
            if label not in self.parts and len(self.parts) >= MAX_COUNTER_KEYS:
                del self.parts[next(iter(self.parts))]
            self.parts[label] += 1
            self.part_bytes += nbytes

    def has(self, key: Hashable) -> bool:
        """Whether ``key`` is cached or being loaded (no counters change)."""
        with self._lock:
            return key in self._lru or key in self._loading

    def discard(self, key: Hashable) -> None:
        """Drop ``key`` if cached (a chunk a sequential reader has finished with)."""
        with self._lock:
            self._lru.pop(key, None)

    @property
    def currsize(self) -> int:
        return int(self._lru.currsize)

    def held(self) -> int:
        """Bytes held now (a share's use of its parent's budget)."""
        return int(self._lru.currsize)

    def stats(self) -> dict[str, Any]:
        """Counters as plain data (served to users as ``.vfs-stats``): ``budget`` is
        the decoded chunks' share of ``cache_size``; ``shares`` and ``reserved`` the rest."""
        with self._lock:
            data: dict[str, Any] = {
                "cache_size": self.total,
                "budget": self.budget,
                "reserved": dict(self.reserved),
                "bytes": self.currsize,
                "peak_bytes": self.peak,
                "entries": len(self._lru),
                "hits": self.hits,
                "misses": self.misses,
                "chunk_loads": dict(self.loads),
                "part_loads": dict(self.parts),
                "part_bytes": self.part_bytes,
                "recent_loads": list(self.recent),
            }
            shares = dict(self.shares)
            reports = dict(self.reports)
        data["shares"] = {name: share.summary() for name, share in shares.items()}
        for name, counters in reports.items():  # outside the lock: they may take others
            data[name] = counters()
        return data

    def summary(self) -> dict[str, int]:
        """The byte and load counters alone (a share's figures in its parent's stats)."""
        with self._lock:
            return {"budget": self.budget, "bytes": self.currsize, "peak_bytes": self.peak,
                    "entries": len(self._lru), "hits": self.hits, "misses": self.misses, "loads": self.load_count}

    def clear(self) -> None:
        with self._lock:
            self._lru.clear()
