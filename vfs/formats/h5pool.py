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
"""

from __future__ import annotations

import os
import threading

import cachetools
import h5py  # noqa: E402

try:  # registers bitshuffle/LZ4, Blosc, Blosc2, Zstd, ... with HDF5
    import hdf5plugin  # noqa: F401,E402
except ImportError:  # pragma: no cover - a dependency, but keep plain HDF5 working
    hdf5plugin = None  # type: ignore[assignment]

from vfs.formats.sniff import HDF5_SIGNATURE, hdf5_userblock, read_head
from vfs.identity import SourceIdentity

H5_LOCK = threading.RLock()

#: h5py's own chunk cache stays small: decoded chunks are kept by vfs's cache instead.
RDCC_NBYTES = 1 << 20
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


def open_h5(path: str) -> h5py.File:
    """``path`` opened read-only; in SWMR read mode when a SWMR writer has it open."""
    if swmr_writing(path):
        return h5py.File(path, "r", libver="latest", swmr=True, rdcc_nbytes=RDCC_NBYTES, locking=False)
    try:
        return h5py.File(path, "r", rdcc_nbytes=RDCC_NBYTES, locking=False)
    except OSError as exc:
        if "already open for write" not in str(exc):
            raise
        return h5py.File(path, "r", libver="latest", swmr=True, rdcc_nbytes=RDCC_NBYTES, locking=False)


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

    def __init__(self, limit: int = 128) -> None:
        self.limit = limit
        self._files = _OpenFiles(maxsize=limit)

    def get(self, path: str, expect: SourceIdentity | None = None) -> h5py.File:
        """The open file for ``path``. Call with :data:`H5_LOCK` held.

        With ``expect``, raise :class:`~vfs.errors.Unreadable` (EIO) unless the file
        handed out is still the version ``expect`` describes.
        """
        entry = self._files.get(path)  # a hit makes it the most recently used
        if entry is None or not entry[0].id.valid:
            f = open_h5(path)
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
