"""A source file's identity: which version of which file a node was built from.

Every node that serves bytes laid out by a file's metadata (offsets of HDF5 chunks, EDF
frames) records the identity of the file it was built from: device, inode, size and
mtime. Each raw read checks the open descriptor against it (one ``fstat`` before and
one after the ``pread``), and the HDF5 pool checks every file it hands out, so a read
never mixes bytes laid out for one version with bytes of another: a file replaced,
rewritten in place or truncated gives EIO to readers of the old nodes, and the folder is
rebuilt (new nodes, new content) at the next look-up.

A file written with HDF5's SWMR protocol is the one exception on size and mtime: the
writer only appends and never moves data it has flushed, so such an identity is
``growing`` and accepts a file that is larger and newer on the same inode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vfs.errors import Unreadable
from vfs.logutil import log_once


@dataclass(frozen=True)
class SourceIdentity:
    """Device, inode, size and mtime of one version of a source file."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    #: the file is written with SWMR: growth on the same inode keeps old bytes valid
    growing: bool = False

    @classmethod
    def of(cls, st: os.stat_result, growing: bool = False) -> SourceIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, growing)

    @property
    def key(self) -> tuple[int, int, int, int]:
        """A hashable key for caches: entries of two versions never meet."""
        return (self.dev, self.ino, self.size, self.mtime_ns)

    def unchanged(self, st: os.stat_result) -> bool:
        """Whether ``st`` is exactly this version (same file, size and mtime)."""
        return identity(st) == self.key

    def still_valid(self, st: os.stat_result) -> bool:
        """Whether bytes laid out for this version may be read from ``st``'s file."""
        if (st.st_dev, st.st_ino) != (self.dev, self.ino):
            return False
        if self.growing:
            return st.st_size >= self.size
        return st.st_size == self.size and st.st_mtime_ns == self.mtime_ns

    def check(self, st: os.stat_result, label: str) -> None:
        """Raise :class:`Unreadable` (EIO, logged once) unless :meth:`still_valid`."""
        if not self.still_valid(st):
            message = f"{label}: the source file changed since it was opened; read refused (EIO)"
            log_once(f"changed:{label}:{self.key}", message)
            raise Unreadable(message)

    def check_fd(self, fd: int, label: str) -> None:
        """:meth:`check` on an open descriptor."""
        self.check(os.fstat(fd), label)


def identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What identifies one version of a source file: device, inode, size, mtime."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def checked_pread(path: str, ident: SourceIdentity | None, size: int, offset: int, label: str) -> bytes:
    """``size`` bytes at ``offset`` of ``path`` (fewer at the end of the file), refused
    with EIO when the file is no longer the version ``ident`` describes (checked before
    and after the read, so a write during the read is caught too)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise Unreadable(f"{label}: cannot open {path}: {exc.strerror}") from exc
    try:
        if ident is not None:
            ident.check_fd(fd, label)
        data = os.pread(fd, size, offset)
        if ident is not None:
            ident.check_fd(fd, label)
        return data
    except OSError as exc:
        if isinstance(exc, Unreadable):
            raise
        raise Unreadable(f"{label}: read error at {offset}: {exc.strerror}") from exc
    finally:
        os.close(fd)
