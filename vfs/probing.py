"""Finding the kind of the files of a folder being listed, side by side and time-bounded.

Listing a source folder must know, for each regular file, whether it is data (its first
bytes, then a real open by its backend: the probe). Those reads run in a few daemon
threads, so a file on a slow disk holds up neither its siblings nor the mount's exit
(``concurrent.futures`` pools join their threads at exit). :func:`wait_all` waits until
each probe has finished or has been *running* for ``MAX_PROBE_SECONDS``; a worker stuck
that long is replaced, up to ``MAX_WORKERS`` threads, so queued files still get their
turn; the verdict on a file still running is the caller's (see ``tree.py``).

The verdicts are remembered (:data:`KINDS`), keyed by what changes when a file does
(device, inode, size, mtime, ctime, name): a folder whose listing was dropped to bound
memory (``nodes.LIVE``) is listed again with one ``lstat`` per entry and opens none of
its unchanged files.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent import futures

from vfs.context import Context
from vfs.formats.registry import Backend, backend_for
from vfs.limits import MAX_PROBE_SECONDS, PROBE_MEMO_ENTRIES

WORKERS = 4
#: threads at most, stuck ones included (a folder of slow files cannot make more)
MAX_WORKERS = 64
POLL = 0.05


class ProbePool:
    """Daemon worker threads; ``WORKERS`` of them not stuck, while ``MAX_WORKERS`` allows."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[futures.Future[None], Callable[[], None]]] = queue.SimpleQueue()
        self._busy: dict[int, float | None] = {}  # worker number -> when its current job started
        self._lock = threading.Lock()
        self._count = 0

    def submit(self, fn: Callable[[], None]) -> futures.Future[None]:
        future: futures.Future[None] = futures.Future()
        self._queue.put((future, fn))
        self.ensure_workers()
        return future

    def ensure_workers(self) -> None:
        """Start workers until ``WORKERS`` of them are not stuck past the deadline."""
        now = time.monotonic()
        with self._lock:
            healthy = sum(1 for t in self._busy.values() if t is None or now - t < MAX_PROBE_SECONDS)
            while healthy < WORKERS and len(self._busy) < MAX_WORKERS:
                number = self._count
                self._count += 1
                self._busy[number] = None
                threading.Thread(target=self._work, args=(number,), name=f"vfs-probe-{number}", daemon=True).start()
                healthy += 1

    @property
    def full(self) -> bool:
        """Whether no more worker may be started (all stuck at the cap)."""
        with self._lock:
            return len(self._busy) >= MAX_WORKERS

    def _work(self, number: int) -> None:
        while True:
            future, fn = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self._busy[number] = time.monotonic()
            try:
                fn()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)
            finally:
                with self._lock:
                    self._busy[number] = None


#: the one probe pool of the mount
PROBES = ProbePool()


class Probe:
    """One regular file being classified in :data:`PROBES`: ``backend`` once sniffed
    (``sniffed`` set), then the backend's probe (``future`` done; its exception is why
    the file cannot be opened)."""

    def __init__(self, path: str, st: os.stat_result, ctx: Context) -> None:
        self.path, self.st, self.ctx = path, st, ctx
        self.backend: Backend | None = None
        self.sniffed = threading.Event()
        self.started: float | None = None
        self.future = PROBES.submit(self._run)

    def _run(self) -> None:
        self.started = time.monotonic()
        KINDS.sniffed()
        try:
            self.backend = backend_for(self.path, self.ctx)
        finally:
            self.sniffed.set()
        if self.backend is not None:
            self.backend.probe(self.path, self.ctx)

    def waiting(self, now: float) -> bool:
        """Still worth waiting for: not done, and queued or running for less than the deadline."""
        if self.future.done():
            return False
        return self.started is None or now - self.started < MAX_PROBE_SECONDS


def wait_all(probes: list[Probe]) -> None:
    """Return once every probe is done or has run for ``MAX_PROBE_SECONDS`` (queued ones
    are waited for while a worker can still take them)."""
    while True:
        now = time.monotonic()
        left = [p for p in probes if p.waiting(now)]
        if not left:
            return
        PROBES.ensure_workers()
        if PROBES.full and all(p.started is None for p in left):
            return  # every worker is stuck: the queued files are not waited for
        futures.wait([p.future for p in left], timeout=min(POLL * len(left) ** 0.5 + POLL, 0.5))


class KindMemo:
    """What each regular file was found to be (a small int: the caller's code for a
    backend, a plain file, a file waiting to be probed again), for at most ``size``
    files. Keys are 64-bit hashes of (device, inode, size, mtime, ctime, name), so an
    entry costs about 90 bytes; a file that changes in any way gets a new key. Two
    generations of at most ``size / 2`` entries each: the older one is forgotten when
    the newer fills up, and a verdict found in it moves to the newer one (an LRU
    without a per-entry list)."""

    def __init__(self, size: int = PROBE_MEMO_ENTRIES) -> None:
        self.half = max(size // 2, 1)
        self._new: dict[int, int] = {}
        self._old: dict[int, int] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.sniffs = 0  # files opened to find their kind (a miss of the memo, or a new version)

    @staticmethod
    def key(name: str, st: os.stat_result) -> int:
        return hash((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, name))

    def get(self, key: int) -> int | None:
        with self._lock:
            kind = self._new.get(key)
            if kind is None:
                kind = self._old.pop(key, None)
                if kind is None:
                    return None
                self._put(key, kind)
            self.hits += 1
            return kind

    def put(self, key: int, kind: int) -> None:
        with self._lock:
            self._put(key, kind)

    def _put(self, key: int, kind: int) -> None:
        if len(self._new) >= self.half:
            self._old, self._new = self._new, {}
        self._new[key] = kind

    def sniffed(self) -> None:
        """Count one file opened to find its kind."""
        with self._lock:
            self.sniffs += 1

    def __len__(self) -> int:
        return len(self._new) + len(self._old)

    def stats(self) -> dict[str, int]:
        return {"entries": len(self), "hits": self.hits, "sniffs": self.sniffs}


#: the one memo of file kinds of the mount
KINDS = KindMemo()
