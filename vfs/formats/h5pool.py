"""Open HDF5 files, bounded: an LRU of ``h5py.File`` objects closed on eviction.

h5py serialises every call through its own global lock, so one process-wide lock here
costs nothing more and makes the pool simple: every use of an h5py object happens while
holding :data:`H5_LOCK`, nothing h5py-owned outlives it, so closing an evicted file can
never pull a file out from under a reader. Data read straight from the file with
``pread`` (uncompressed layouts) does not take the lock.
"""

from __future__ import annotations

import threading

import cachetools
import h5py  # noqa: E402

try:  # registers bitshuffle/LZ4, Blosc, Blosc2, Zstd, ... with HDF5
    import hdf5plugin  # noqa: F401,E402
except ImportError:  # pragma: no cover - a dependency, but keep plain HDF5 working
    hdf5plugin = None  # type: ignore[assignment]

H5_LOCK = threading.RLock()

#: h5py's own chunk cache stays small: decoded chunks are kept by vfs's cache instead.
RDCC_NBYTES = 1 << 20


def _close(f: h5py.File) -> None:
    try:
        f.close()
    except Exception:  # closing a file that is already broken
        pass


class _OpenFiles(cachetools.LRUCache[str, h5py.File]):
    """An LRU of open files that closes the file it evicts."""

    def popitem(self) -> tuple[str, h5py.File]:
        path, f = super().popitem()
        _close(f)
        return path, f


class FilePool:
    """At most ``limit`` open HDF5 files; the least recently used is closed first."""

    def __init__(self, limit: int = 128) -> None:
        self.limit = limit
        self._files = _OpenFiles(maxsize=limit)

    def get(self, path: str) -> h5py.File:
        """The open file for ``path``. Call with :data:`H5_LOCK` held."""
        f = self._files.get(path)  # a hit makes it the most recently used
        if f is not None and f.id.valid:
            return f
        f = h5py.File(path, "r", rdcc_nbytes=RDCC_NBYTES, locking=False)
        self._files[path] = f
        return f

    def forget(self, path: str) -> None:
        """Close ``path`` (its content changed on disk). Call with the lock held."""
        f = self._files.pop(path, None)
        if f is not None:
            _close(f)

    def __len__(self) -> int:
        return len(self._files)


POOL = FilePool()
