"""Array sources: what every backend hands to the renderings.

An :class:`ArraySource` has a shape, a dtype and a chunk shape, and serves any flat
element range ``[a, b)`` (C order) by reading only the chunks that range touches.
Renderings (.npy, .txt, .edf) see nothing else, so an HDF5 dataset, a SPEC column and an
EDF frame render the same way.

Three kinds:

* :class:`ChunkedSource` decodes whole chunks (HDF5 with filters, VDS, a gzip EDF) and
  keeps them in the shared :class:`~vfs.cache.ChunkCache`.
* :class:`RawSource` serves uncompressed data straight from the file with ``pread`` at
  offsets known from metadata (contiguous or unfiltered chunked HDF5, EDF frames). It
  reads only the bytes asked for; the kernel's page cache is its cache.
* :class:`MemorySource` wraps an array already in memory (SPEC columns, attributes).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from vfs.cache import ChunkCache
from vfs.errors import Unreadable, VfsError
from vfs.identity import SourceIdentity
from vfs.logutil import log_once
from vfs.selection import Index, chunks_of_box, flat_boxes, overlap, strides_of


_PREFETCH = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vfs-prefetch")
_local = threading.local()  # the file a RawSource read has open, per thread


class ArraySource:
    """Shape, dtype, chunk shape, attributes and ranged element reads."""

    def __init__(
        self,
        shape: Index,
        dtype: np.dtype[Any],
        chunks: Index,
        label: str,
        attrs: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.chunks = tuple(max(int(c), 1) for c in chunks)
        self.label = label
        self._attrs = attrs

    @property
    def attrs(self) -> Mapping[str, Any]:
        """Attributes a rendering carries (``.edf`` header keys); ``attrs`` given as a
        function is called the first time they are asked for (EDF header keys)."""
        if callable(self._attrs):
            self._attrs = dict(self._attrs())
        return self._attrs or {}

    @attrs.setter
    def attrs(self, value: Mapping[str, Any] | Callable[[], Mapping[str, Any]]) -> None:
        self._attrs = value

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def fill_box(self, start: Index, extent: Index, out: np.ndarray) -> None:
        """Write the box ``start``/``extent`` of the array into ``out``."""
        raise NotImplementedError

    def read_flat(self, a: int, b: int) -> np.ndarray:
        """Elements ``[a, b)`` of the array in C order, as a 1-D array."""
        a, b = max(a, 0), min(b, self.size)
        if a >= b:
            return np.empty(0, self.dtype)
        out = np.zeros(b - a, self.dtype) if self.dtype.names else np.empty(b - a, self.dtype)
        pos = 0
        for start, extent in flat_boxes(self.shape, a, b):
            n = math.prod(extent)
            self.fill_box(start, extent, out[pos : pos + n].reshape(extent))
            pos += n
        return out

    def read_bytes(self, p: int, q: int) -> bytes:
        """Bytes ``[p, q)`` of the array's raw C-order data (as ``tobytes`` would give)."""
        return bytes(self.read_view(p, q))

    def read_view(self, p: int, q: int) -> np.ndarray | bytes:
        """The same bytes as :meth:`read_bytes`, as a uint8 array where that saves a copy."""
        isz = self.dtype.itemsize
        q = min(q, self.nbytes)
        if p >= q or isz == 0:
            return b""
        e0, e1 = p // isz, -(-q // isz)
        data = np.ascontiguousarray(self.read_flat(e0, e1)).view(np.uint8).reshape(-1)
        return data[p - e0 * isz : q - e0 * isz]

    def read_all(self) -> np.ndarray:
        """The whole array (for small data and tests)."""
        return self.read_flat(0, self.size).reshape(self.shape)


class MemorySource(ArraySource):
    """An array that is already in memory."""

    def __init__(self, array: np.ndarray, label: str, attrs: Mapping[str, Any] | None = None) -> None:
        array = array if array.flags.c_contiguous else array.copy(order="C")
        super().__init__(array.shape, array.dtype, array.shape, label, attrs)
        self.array = array

    def fill_box(self, start: Index, extent: Index, out: np.ndarray) -> None:
        out[...] = self.array[tuple(slice(s, s + e) for s, e in zip(start, extent))]

    def read_flat(self, a: int, b: int) -> np.ndarray:
        return self.array.reshape(-1)[max(a, 0) : b]


class ChunkedSource(ArraySource):
    """Data decoded a chunk at a time through the shared chunk cache.

    Subclasses implement :meth:`load_chunk`; ``key`` identifies the object across the
    process (source identity + object name) so cache entries never mix files.
    """

    def __init__(
        self,
        shape: Index,
        dtype: np.dtype[Any],
        chunks: Index,
        label: str,
        key: Hashable,
        cache: ChunkCache,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(shape, dtype, chunks, label, attrs)
        self.key = key
        self.cache = cache
        self._next = -1  # where a sequential reader would read next

    def read_flat(self, a: int, b: int) -> np.ndarray:
        """As the base class; a read that continues the previous one also starts decoding
        the chunks of the next two such reads on the prefetch thread (the second core),
        so that decoding overlaps with the copying of this read."""
        out = super().read_flat(a, b)
        sequential = a == self._next and b > a
        self._next = b
        if sequential and b < self.size:
            self._prefetch(b, min(self.size, b + 2 * (b - a)))
        return out

    def _prefetch(self, a: int, b: int) -> None:
        for start, extent in flat_boxes(self.shape, a, b):
            for index in chunks_of_box(start, extent, self.chunks):
                if not self.cache.has(self.chunk_key(index)):
                    _PREFETCH.submit(self._prefetch_one, index)

    def _prefetch_one(self, index: Index) -> None:
        try:
            self.chunk(index)
        except Exception:  # the reader that needs it will get the error (EIO) itself
            pass

    def load_chunk(self, index: Index) -> np.ndarray:
        """Decode chunk ``index`` (clipped at the array's edge)."""
        raise NotImplementedError

    def chunk_key(self, index: Index) -> Hashable:
        """The cache key of chunk ``index`` (a subclass may share chunks between sources)."""
        return (self.key, index)

    def chunk(self, index: Index) -> np.ndarray:
        return self.cache.get(self.chunk_key(index), lambda: self._checked_load(index), self.label)  # type: ignore[no-any-return]

    def _checked_load(self, index: Index) -> np.ndarray:
        try:
            return np.asarray(self.load_chunk(index))
        except VfsError:
            raise
        except Exception as exc:  # a decoder or h5py failure: the read gets EIO
            message = f"{self.label}: cannot read chunk {index}: {type(exc).__name__}: {exc}"
            log_once(f"chunk:{self.label}", message)
            raise Unreadable(message) from exc

    def fill_box(self, start: Index, extent: Index, out: np.ndarray) -> None:
        for index in chunks_of_box(start, extent, self.chunks):
            data = self.chunk(index)
            in_box, in_chunk = overlap(start, extent, index, self.chunks, self.shape)
            key: tuple[Any, ...] = (*in_chunk, Ellipsis)  # keeps 0-d chunks arrays
            out[in_box] = data[key]


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

    def read_flat(self, a: int, b: int) -> np.ndarray:
        """As the base class, with the file opened once for all the pieces of this read."""
        if getattr(_local, "fd", None) is not None:
            return super().read_flat(a, b)
        _local.fd = self._open()
        try:
            out = super().read_flat(a, b)
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
        isz = self.dtype.itemsize
        for index in chunks_of_box(start, extent, self.chunks):
            in_box, in_chunk = overlap(start, extent, index, self.chunks, self.shape)
            base = self.chunk_offset(index)
            if base is None:
                out[in_box] = self.fill
                continue
            first = sum(s.start * st for s, st in zip(in_chunk, self._chunk_strides))
            last = sum((s.stop - 1) * st for s, st in zip(in_chunk, self._chunk_strides))
            raw = self._pread(base + first * isz, (last - first + 1) * isz)
            flat = np.frombuffer(raw, self.dtype)
            sub_shape = tuple(s.stop - s.start for s in in_chunk)
            view = np.lib.stride_tricks.as_strided(
                flat, sub_shape, tuple(st * isz for st in self._chunk_strides), writeable=False
            )
            out[in_box] = view

    def read_view(self, p: int, q: int) -> np.ndarray | bytes:
        if len(self.chunks) == len(self.shape) and self.chunks == self.shape:
            base = self.chunk_offset(tuple(0 for _ in self.shape))
            q = min(q, self.nbytes)
            if base is not None and p < q:
                return self._pread(base + p, q - p)
        return super().read_view(p, q)
