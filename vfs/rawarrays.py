"""Uncompressed array data read straight from the file (:class:`RawSource`).

Contiguous or unfiltered chunked HDF5 datasets, EDF frames, zarr chunks stored raw and
ripple cubes: the offsets come from metadata, and a read is ``preadv`` calls for the
bytes it needs, into the caller's buffer where they are contiguous. No cache of its
own: the kernel's page cache of the source file is the cache.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vfs.arrays import ArraySource
from vfs.errors import Unreadable
from vfs.identity import SourceIdentity
from vfs.logutil import log_once
from vfs.selection import Index, chunks_of_box, overlap, strides_of

_local = threading.local()  # the file a read has open, and a scratch buffer, per thread

#: pieces of a read this close in the file are read by one call (the gap read and dropped)
MERGE_GAP = 16 << 10
#: a per-thread scratch buffer up to this size is kept for the next read
SCRATCH_KEEP = 64 << 20


def _scratch(size: int) -> np.ndarray:
    """A uint8 buffer of ``size`` bytes for this thread's reads, reused between reads."""
    buf: np.ndarray | None = getattr(_local, "scratch", None)
    if buf is None or buf.size < size:
        buf = np.empty(max(size, 1 << 20), np.uint8)
        if size <= SCRATCH_KEEP:
            _local.scratch = buf
    return buf[:size]


class RawSource(ArraySource):
    """Uncompressed data read with ``pread`` at offsets from metadata.

    ``chunk_offset(index)`` gives the file offset of a stored chunk (each stored chunk is
    a full ``chunks``-shaped C-ordered block) or ``None`` where nothing was written (then
    ``fill`` is served). Contiguous data is the one-chunk case ``chunks == shape``.
    ``dtype`` must be the file's byte layout (byte order included). With ``identity``,
    every read checks the open file against the version the offsets came from, before
    and after its ``pread`` calls (see :mod:`vfs.identity`).
    """

    def __init__(
        self,
        path: str,
        shape: Index,
        dtype: np.dtype[Any],
        chunks: Index,
        label: str,
        chunk_offset: Callable[[Index], int | None],
        fill: Any = 0,
        attrs: Mapping[str, Any] | None = None,
        identity: SourceIdentity | None = None,
    ) -> None:
        super().__init__(shape, dtype, chunks, label, attrs)
        self.path = path
        self.chunk_offset = chunk_offset
        self.fill = fill
        self.identity = identity
        self._chunk_strides = strides_of(self.chunks)
        self._byte_strides = tuple(st * self.dtype.itemsize for st in self._chunk_strides)

    def _open(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise Unreadable(f"{self.label}: cannot open {self.path}: {exc.strerror}") from exc
        try:
            self._check(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _check(self, fd: int) -> None:
        if self.identity is not None:
            self.identity.check_fd(fd, self.label)

    def read_flat(self, a: int, b: int, out: np.ndarray | None = None) -> np.ndarray:
        """As the base class, with the file opened once for all the pieces of this read;
        contiguous data (one stored chunk) is one ``preadv`` straight into ``out``."""
        base = self._single_base()
        if base is not None and max(a, 0) < min(b, self.size):
            a, b = max(a, 0), min(b, self.size)
            if out is None:
                out = np.empty(b - a, self.dtype)
            self._preadv(out.view(np.uint8).reshape(-1), base + a * self.dtype.itemsize)
            return out
        if getattr(_local, "fd", None) is not None:
            return super().read_flat(a, b, out)
        _local.fd = self._open()
        try:
            out = super().read_flat(a, b, out)
            self._check(_local.fd)
            return out
        finally:
            os.close(_local.fd)
            _local.fd = None

    def _pread(self, offset: int, length: int) -> bytes:
        shared: int | None = getattr(_local, "fd", None)
        own = shared is None
        fd = self._open() if shared is None else shared
        try:
            data = os.pread(fd, length, offset)
            if own:
                self._check(fd)
        finally:
            if own:
                os.close(fd)
        if len(data) != length:
            message = f"{self.label}: file ends at {offset + len(data)}, data need {offset + length} (truncated?)"
            log_once(f"pread:{self.label}", message)
            raise Unreadable(message)
        return data

    def fill_box(self, start: Index, extent: Index, out: np.ndarray) -> None:
        """The pieces of every chunk the box touches, read into one scratch buffer by as
        few ``preadv`` calls as the file allows (pieces next to each other in the file,
        or separated by less than :data:`MERGE_GAP`, are one call), then each copied out
        with one strided NumPy copy: a handful of Python operations per piece."""
        isz = self.dtype.itemsize
        pieces: list[tuple[int, int, Index, tuple[slice, ...]]] = []  # file offset, bytes, shape, where
        for index in chunks_of_box(start, extent, self.chunks):
            in_box, in_chunk = overlap(start, extent, index, self.chunks, self.shape)
            base = self.chunk_offset(index)
            if base is None:
                out[in_box] = self.fill
                continue
            first = sum(s.start * st for s, st in zip(in_chunk, self._chunk_strides))
            last = sum((s.stop - 1) * st for s, st in zip(in_chunk, self._chunk_strides))
            pieces.append((base + first * isz, (last - first + 1) * isz,
                           tuple(s.stop - s.start for s in in_chunk), in_box))
        # a piece that is one run in the file and in ``out`` (contiguous data, whole rows
        # of a chunk) is read straight into ``out``: with the FUSE reply buffer as
        # ``out``, the kernel's copy is the only one
        rest = []
        for piece in pieces:
            box: tuple[Any, ...] = (*piece[3], Ellipsis)  # a view, also of a 0-d box
            target = out[box]
            if piece[1] == target.nbytes and target.flags.c_contiguous:
                self._preadv(target.reshape(-1).view(np.uint8), piece[0])
            else:
                rest.append(piece)
        pieces = rest
        if not pieces:
            return
        pieces.sort(key=lambda piece: piece[0])
        # runs of pieces read by one call: (file offset, bytes); where each piece lands
        runs: list[list[int]] = []
        at: list[int] = []
        pos = 0
        for offset, length, _, _ in pieces:
            if runs and 0 <= offset - (runs[-1][0] + runs[-1][1]) <= MERGE_GAP:
                pos += offset - (runs[-1][0] + runs[-1][1])
                runs[-1][1] = offset + length - runs[-1][0]
            else:
                runs.append([offset, length])
            at.append(pos)
            pos += length
        scratch = _scratch(pos)
        done = 0
        for offset, length in runs:
            self._preadv(scratch[done : done + length], offset)
            done += length
        for (_, _, sub_shape, in_box), where in zip(pieces, at):
            out[in_box] = np.ndarray(sub_shape, self.dtype, scratch, where, self._byte_strides)

    def _preadv(self, into: np.ndarray, offset: int) -> None:
        shared: int | None = getattr(_local, "fd", None)
        fd = self._open() if shared is None else shared
        try:
            got = os.preadv(fd, [into.data], offset)
            if shared is None:
                self._check(fd)
        finally:
            if shared is None:
                os.close(fd)
        if got != into.size:
            message = f"{self.label}: file ends at {offset + got}, data need {offset + into.size} (truncated?)"
            log_once(f"pread:{self.label}", message)
            raise Unreadable(message)

    def _single_base(self) -> int | None:
        """The file offset of the data when it is one stored chunk (contiguous), else None."""
        if len(self.chunks) == len(self.shape) and self.chunks == self.shape and self.shape:
            return self.chunk_offset(tuple(0 for _ in self.shape))
        return None

    def read_view(self, p: int, q: int) -> np.ndarray | bytes:
        base = self._single_base()
        q = min(q, self.nbytes)
        if base is not None and p < q:
            return self._pread(base + p, q - p)
        return super().read_view(p, q)
