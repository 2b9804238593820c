"""Open HDF5 files, bounded: an LRU of ``h5py.File`` objects closed on eviction.

h5py serialises every call through its own global lock, so one process-wide lock here
costs nothing more and makes the pool simple: every use of an h5py object happens while
holding :data:`H5_LOCK`, nothing h5py-owned outlives it, so closing an evicted file can
never pull a file out from under a reader. Data read straight from the file with
``pread`` (uncompressed layouts) does not take the lock.

Files being written with SWMR (the superblock says so, or HDF5 refuses a normal open
because the file "is already open for write") are opened in SWMR read mode. Each open
file carries the :class:`~vfs.identity.SourceIdentity` it was opened at; a caller that
built its nodes from one version passes that identity and gets EIO instead of a file
that is another version (the pool reopens by path, so it could otherwise open a
replaced or rewritten file behind the nodes' back).

Memory: HDF5 keeps a metadata cache per open file (by default it grows to 32 MiB, and
what it holds takes about ten times its accounted size once decoded) and a chunk cache
per open dataset. Files are opened with both small (``limits.H5_METADATA_CACHE``,
``limits.H5_CHUNK_CACHE``), so one open file holds at most about
``limits.H5_FILE_BYTES``; :func:`fit` sizes the pool from ``--cache-size`` and takes
the pool's worst case out of it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import cachetools
import h5py  # noqa: E402

try:  # registers bitshuffle/LZ4, Blosc, Blosc2, Zstd, ... with HDF5
    import hdf5plugin  # noqa: F401,E402
except ImportError:  # pragma: no cover - a dependency, but keep plain HDF5 working
    hdf5plugin = None  # type: ignore[assignment]

from vfs.cache import ChunkCache
from vfs.chunktable import table_bytes
from vfs.formats.sniff import HDF5_SIGNATURE, hdf5_userblock, read_head
from vfs.identity import SourceIdentity
from vfs.limits import (CHUNK_TABLE_SHARE, H5_CHUNK_CACHE, H5_FILE_BYTES, H5_FILES_SHARE, H5_MAX_OPEN_FILES,
                        H5_METADATA_CACHE, H5_MIN_OPEN_FILES, MAX_CHUNK_INDEX, CHUNK_TABLE_ENTRY)
from vfs.selection import Index

H5_LOCK = threading.RLock()

#: h5py's own chunk cache stays small: decoded chunks are kept by vfs's cache instead.
RDCC_NBYTES = H5_CHUNK_CACHE
#: hash slots of that chunk cache (a prime, as HDF5 asks)
RDCC_NSLOTS = 521
#: the name of the part of the cache that holds chunk offset tables (``.vfs-stats``)
TABLES = "chunk_tables"
#: superblock v3 file consistency flags: bit 0 open for write, bit 2 open for SWMR write
SWMR_WRITE_FLAG = 0x04


def swmr_writing(path: str) -> bool:
    """Whether the superblock says a writer holds the file open in SWMR mode."""
    try:
        head = read_head(path)
        base = hdf5_userblock(path, head)
        if base is None:
            return False
        if base + 12 > len(head):
            with open(path, "rb") as fh:
                fh.seek(base)
                head = b"\0" * base + fh.read(12)
        version, flags = head[base + 8], head[base + 11]
        return head[base : base + 8] == HDF5_SIGNATURE and version >= 3 and bool(flags & SWMR_WRITE_FLAG)
    except OSError:
        return False


def access_plist(swmr: bool) -> Any:
    """The file access property list of every pool file: what ``h5py.File(path, "r",
    locking=False)`` uses (HDF5's default close degree: a virtual dataset's sources,
    opened by HDF5 with that default, may be pool files), with a fixed, small metadata
    cache and chunk cache."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    low = h5py.h5f.LIBVER_LATEST if swmr else h5py.h5f.LIBVER_EARLIEST
    fapl.set_libver_bounds(low, h5py.h5f.LIBVER_LATEST)
    fapl.set_cache(0, RDCC_NSLOTS, RDCC_NBYTES, 0.75)
    try:
        fapl.set_file_locking(False, True)
    except AttributeError:  # pragma: no cover - HDF5 without file locking
        pass
    config = fapl.get_mdc_config()
    config.set_initial_size = True
    config.initial_size = config.min_size = config.max_size = H5_METADATA_CACHE
    fapl.set_mdc_config(config)
    return fapl


def _open(path: str, swmr: bool) -> h5py.File:
    flags = h5py.h5f.ACC_RDONLY | (h5py.h5f.ACC_SWMR_READ if swmr else 0)
    return h5py.File(h5py.h5f.open(os.fsencode(path), flags, fapl=access_plist(swmr)))


def open_h5(path: str) -> h5py.File:
    """``path`` opened read-only; in SWMR read mode when a SWMR writer has it open."""
    if swmr_writing(path):
        return _open(path, True)
    try:
        return _open(path, False)
    except OSError as exc:
        if "already open for write" not in str(exc):
            raise
        return _open(path, True)


def file_identity(f: h5py.File, path: str) -> SourceIdentity:
    """The identity of the version ``f`` has open (its descriptor when HDF5 gives it)."""
    try:
        st = os.fstat(int(f.id.get_vfd_handle()))
    except Exception:  # a driver without a descriptor
        st = os.stat(path)
    return SourceIdentity.of(st, growing=bool(f.swmr_mode))


def _close(f: h5py.File) -> None:
    try:
        f.close()
    except Exception:  # closing a file that is already broken
        pass


class _OpenFiles(cachetools.LRUCache[str, tuple[h5py.File, SourceIdentity]]):
    """An LRU of open files (with the identity each was opened at) that closes the file
    it evicts."""

    def popitem(self) -> tuple[str, tuple[h5py.File, SourceIdentity]]:
        path, entry = super().popitem()
        _close(entry[0])
        return path, entry


class FilePool:
    """At most ``limit`` open HDF5 files; the least recently used is closed first."""

    def __init__(self, limit: int = H5_MAX_OPEN_FILES) -> None:
        self.limit = limit
        self._files = _OpenFiles(maxsize=limit)
        self.opens = 0

    def resize(self, limit: int) -> None:
        """Keep at most ``limit`` files from now on (the least recently used closed
        first). Call with the lock held."""
        if limit == self.limit:
            return
        old, self.limit = self._files, limit
        self._files = _OpenFiles(maxsize=limit)
        while len(old):  # least recently used first (the base class's popitem: not closed)
            path, entry = cachetools.LRUCache.popitem(old)
            self._files[path] = entry

    def files(self) -> list[h5py.File]:
        """The open files, least recently used first. Call with the lock held."""
        return [f for f, _ in self._files.values() if f.id.valid]

    def stats(self) -> dict[str, Any]:
        """What HDF5 says of the open files' caches (for ``.vfs-stats``)."""
        with H5_LOCK:
            caches = []
            for f in self.files():
                config = f.id.get_access_plist().get_mdc_config()
                caches.append({"max_size": config.max_size, "size": f.id.get_mdc_size()[2],
                               "datasets_open": h5py.h5f.get_obj_count(f.id, h5py.h5f.OBJ_DATASET)})
            return {"limit": self.limit, "open": len(self._files), "opens": self.opens,
                    "bytes_per_file": H5_FILE_BYTES, "metadata_caches": caches}

    def get(self, path: str, expect: SourceIdentity | None = None) -> h5py.File:
        """The open file for ``path``. Call with :data:`H5_LOCK` held.

        With ``expect``, raise :class:`~vfs.errors.Unreadable` (EIO) unless the file
        handed out is still the version ``expect`` describes.
        """
        entry = self._files.get(path)  # a hit makes it the most recently used
        if entry is None or not entry[0].id.valid:
            f = open_h5(path)
            self.opens += 1
            entry = self._files[path] = (f, file_identity(f, path))
        f = entry[0]
        if expect is not None:
            try:
                expect.check_fd(int(f.id.get_vfd_handle()), path)
            except (TypeError, ValueError):  # a driver without a descriptor
                expect.check(os.stat(path), path)
        return f

    def identity(self, path: str) -> SourceIdentity:
        """The identity of the version of ``path`` the pool has open (opening it)."""
        self.get(path)
        return self._files[path][1]

    def forget(self, path: str) -> None:
        """Close ``path`` (its content changed on disk). Call with the lock held."""
        entry = self._files.pop(path, None)
        if entry is not None:
            _close(entry[0])

    def __len__(self) -> int:
        return len(self._files)


POOL = FilePool()


def pool_files(budget: int) -> int:
    """How many files the pool keeps open for a ``--cache-size`` of ``budget``: its
    share (``limits.H5_FILES_SHARE``) over the bytes of one file, within the bounds, and
    never more than a quarter of a small budget pays for (one file at least)."""
    files = min(max(budget // H5_FILES_SHARE // H5_FILE_BYTES, H5_MIN_OPEN_FILES), H5_MAX_OPEN_FILES)
    return max(min(files, budget // 4 // H5_FILE_BYTES), 1)


def _open_files_bytes() -> int:
    """What the pool's open files hold now, as counted (``limits.H5_FILE_BYTES`` each)."""
    return len(POOL) * H5_FILE_BYTES


def fit(cache: ChunkCache) -> ChunkCache:
    """Size the pool and the chunk offset tables from ``cache``'s whole budget, take
    both out of it, and return the part that holds the tables. Idempotent."""
    files = pool_files(cache.total)
    with H5_LOCK:
        POOL.resize(files)
    cache.reserve("hdf5_files", files * H5_FILE_BYTES, _open_files_bytes)
    cache.report("hdf5_files", POOL.stats)
    return cache.share(TABLES, cache.total // CHUNK_TABLE_SHARE)


def tables(cache: ChunkCache) -> ChunkCache:
    """The part of ``cache`` that holds chunk offset tables (made by :func:`fit`)."""
    part = cache.shares.get(TABLES)
    return part if part is not None else fit(cache)


def indexable(cache: ChunkCache, shape: Index, chunks: Index) -> bool:
    """Whether a dataset's chunk offset table may be kept: at most
    ``limits.MAX_CHUNK_INDEX`` chunks and half the tables' budget (so a reader going
    back and forth between two datasets does not read a table again at every read)."""
    grid = table_bytes(shape, chunks)
    return grid <= MAX_CHUNK_INDEX * CHUNK_TABLE_ENTRY and grid <= tables(cache).budget // 2
