"""Array sources: what every backend hands to the renderings.

An :class:`ArraySource` has a shape, a dtype and a chunk shape, and serves any flat
element range ``[a, b)`` (C order) by reading only the chunks that range touches.
Renderings (.npy, .txt, .edf) see nothing else, so an HDF5 dataset, a SPEC column and an
EDF frame render the same way.

Three kinds:

* :class:`ChunkedSource` decodes whole chunks (HDF5 with filters, VDS, a gzip EDF) and
  keeps them in the shared :class:`~vfs.cache.ChunkCache`; sources whose decoders
  release the GIL decode the chunks of a read, and a stream's next chunks, in parallel
  on one pool of threads (one per core).
* :class:`~vfs.rawarrays.RawSource` (its own module) serves uncompressed data straight
  from the file with ``preadv`` at offsets known from metadata (contiguous or unfiltered
  chunked HDF5, EDF frames). It reads only the bytes asked for; the kernel's page cache
  is its cache.
* :class:`MemorySource` wraps an array already in memory (SPEC columns, attributes).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from vfs.cache import ChunkCache
from vfs.errors import Unreadable, VfsError
from vfs.logutil import log, log_once
from vfs.selection import Index, chunks_of_box, flat_boxes, overlap, strides_of


#: decode threads, one per core: chunks of one request, and the prefetched chunks of the
#: next ones, decode here in parallel (decoders that release the GIL use every core)
WORKERS = max(os.cpu_count() or 2, 2)
_local = threading.local()  # pool marker; the chunks, parts and keys of a read in progress


def _mark_worker() -> None:
    _local.worker = True


_POOL = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="vfs-decode", initializer=_mark_worker)


def in_worker() -> bool:
    """Whether this thread is one of the decode pool's (which must not wait for locks a
    requesting thread may hold: see :class:`Deferred`)."""
    return bool(getattr(_local, "worker", False))


#: bytes a run of back-to-back reads must cover before the prefetcher starts: more than
#: the mount's read-ahead window (1 MiB), which one page fault may read as several requests
STREAM_MIN = 2 << 20
#: a read that is not part of a stream decodes only the blocks it needs of a chunk it
#: needs at most this share of (1/4), where the chunk's filters allow it; more than
#: that, and the whole chunk is decoded and cached
PART_SHARE = 4
class Deferred(Exception):
    """Raised by :meth:`ChunkedSource.load_chunk` in a pool thread for a chunk that must
    be loaded by the requesting thread itself (e.g. through a library lock that thread
    may already hold). Not an error: the requesting thread loads the chunk again."""


class ArraySource:
    """Shape, dtype, chunk shape, attributes and ranged element reads."""

    #: whether its ``.txt`` takes the short layout whatever its length (SPEC columns)
    short_text = False

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

    def read_flat(self, a: int, b: int, out: np.ndarray | None = None) -> np.ndarray:
        """Elements ``[a, b)`` of the array in C order, as a 1-D array: ``out`` (of the
        clipped range's length) when given, so a read lands in the caller's buffer."""
        a, b = max(a, 0), min(b, self.size)
        if a >= b:
            return np.empty(0, self.dtype)
        if out is None:
            out = np.zeros(b - a, self.dtype) if self.dtype.names else np.empty(b - a, self.dtype)
        elif self.dtype.names:
            out[...] = np.zeros((), self.dtype)
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


def placed(got: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``got``, or ``out`` holding a copy of it: for sources whose reads make their own
    array, under :meth:`ArraySource.read_flat`'s ``out`` contract."""
    if out is None:
        return got
    out[...] = got
    return out


class MemorySource(ArraySource):
    """An array that is already in memory."""

    def __init__(self, array: np.ndarray, label: str, attrs: Mapping[str, Any] | None = None) -> None:
        array = array if array.flags.c_contiguous else array.copy(order="C")
        super().__init__(array.shape, array.dtype, array.shape, label, attrs)
        self.array = array

    def fill_box(self, start: Index, extent: Index, out: np.ndarray) -> None:
        out[...] = self.array[tuple(slice(s, s + e) for s, e in zip(start, extent))]

    def read_flat(self, a: int, b: int, out: np.ndarray | None = None) -> np.ndarray:
        return placed(self.array.reshape(-1)[max(a, 0) : b], out)


class ChunkedSource(ArraySource):
    """Data decoded a chunk at a time through the shared chunk cache.

    Subclasses implement :meth:`load_chunk`; ``key`` identifies the object across the
    process (source identity + object name) so cache entries never mix files.
    """

    #: whether the chunks of one request are decoded in parallel on the pool (for
    #: decoders that release the GIL; pointless for a source serialised by a lock)
    parallel = False
    #: whether :meth:`load_part` can decode part of a chunk (see :data:`PART_SHARE`)
    partial = False

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
        self._run = 0  # where the current run of sequential reads started
        self._chunk_bytes = math.prod(self.chunks) * self.dtype.itemsize
        # elements in one row of chunks along the first axis (the flat span a sequential
        # reader crosses before it needs new chunks)
        self._row = math.prod(self.chunks[:1]) * math.prod(self.shape[1:]) if self.shape else 1

    def read_flat(self, a: int, b: int, out: np.ndarray | None = None) -> np.ndarray:
        """As the base class. For a parallel source, the chunks of this read that nobody
        has yet are submitted to the decode pool first (all but one, which this thread
        decodes itself). A read that continues the previous one then also submits the
        chunks of the reads that will follow, so that they decode while this one is
        copied out; they queue behind this read's own chunks."""
        a, b = max(a, 0), min(b, self.size)
        if a != self._next:
            self._run = a
        # streaming: this read continues a run longer than one kernel read-ahead window,
        # so it is not the read-around of a single page fault (which must decode only
        # what the kernel asked for)
        sequential = a == self._next and b > a and (b - self._run) * self.dtype.itemsize >= STREAM_MIN
        self._next = b
        pending: dict[Index, Future[np.ndarray]] = {}
        touched = list(dict.fromkeys(index for start, extent in flat_boxes(self.shape, a, b)
                                     for index in chunks_of_box(start, extent, self.chunks)))
        parts: dict[Index, tuple[int, int, Future[Part] | None]] = {}
        keep = frozenset(self.chunk_key(index) for index in touched)  # not dropped for this read's chunks
        if len(touched) * self._chunk_bytes > self.cache.budget:
            log_once(f"too-small:{self.label}", f"{self.label}: one read needs {len(touched) * self._chunk_bytes >> 20} MiB "
                     f"of decoded chunks, more than the {self.cache.budget >> 20} MiB the cache has for them "
                     "(--cache-size): the chunks that do not fit are decoded again by every read that needs them")
        if self.parallel and b > a:
            missing = [index for index in touched if not self.cache.has(self.chunk_key(index))]
            if self.partial and not sequential and missing:
                # a page fault's read-around: of a chunk nobody has, decode the blocks it needs
                spans = self._spans(a, b, set(missing))
                parts = {index: (lo, hi, _POOL.submit(self._part, index, lo, hi) if k else None)
                         for k, (index, (lo, hi)) in enumerate(spans.items())}
                missing = [index for index in missing if index not in parts]
            pending = {index: _POOL.submit(self.chunk, index, keep) for index in missing[1:]}
        if sequential and b < self.size:
            # ahead: the next two such reads, and for parallel decoders a quarter of a
            # chunk row, so the next row of chunks is decoding before it is needed; never
            # more than fits in half the cache beside the chunks this read holds
            ahead = max(2 * (b - a), self._row // 4 if self.parallel else 0)
            room = min(self.cache.budget // 4, self.cache.budget // 2 - len(touched) * self._chunk_bytes)
            self._prefetch(b, min(self.size, b + ahead), room)
        _local.pending, _local.parts, _local.keep = pending, parts, keep
        try:
            out = super().read_flat(a, b, out)
        finally:
            _local.pending = _local.parts = _local.keep = None
        if sequential and self.parallel:
            # two reads back: the kernel sends a stream's reads on several threads at once,
            # so the read just before this one may still be copying out its chunks
            self._drop_finished(max(a - 3 * (b - a), 0), max(a - 2 * (b - a), 0))
        return out

    def _spans(self, a: int, b: int, wanted: set[Index]) -> dict[Index, tuple[int, int]]:
        """For the chunks in ``wanted`` that elements ``[a, b)`` need at most
        1/:data:`PART_SHARE` of: chunk index -> the range ``[lo, hi)`` of the chunk's
        elements (C order in the full chunk shape, as stored) holding them."""
        strides = strides_of(self.chunks)
        spans: dict[Index, tuple[int, int]] = {}
        for start, extent in flat_boxes(self.shape, a, b):
            for index in chunks_of_box(start, extent, self.chunks):
                if index in wanted:
                    _, in_chunk = overlap(start, extent, index, self.chunks, self.shape)
                    lo = sum(sl.start * st for sl, st in zip(in_chunk, strides))
                    hi = sum((sl.stop - 1) * st for sl, st in zip(in_chunk, strides)) + 1
                    old = spans.get(index, (lo, hi))
                    spans[index] = (min(lo, old[0]), max(hi, old[1]))
        limit = math.prod(self.chunks) // PART_SHARE
        return {index: span for index, span in spans.items() if span[1] - span[0] <= limit}

    def _part(self, index: Index, lo: int, hi: int) -> Part:
        """:meth:`load_part`, counted; None where the chunk must be decoded whole."""
        try:
            got = self.load_part(index, lo, hi)
        except (Deferred, Unreadable):
            raise
        except Exception as exc:  # the whole-chunk path decides what this chunk reads as
            log.debug("%s: part of chunk %s decoded whole: %s", self.label, index, exc)
            return None
        if got is not None:
            self.cache.count_part(self.label, got[1].nbytes)
        return got

    def load_part(self, index: Index, lo: int, hi: int) -> Part:
        """Elements ``[lo, hi)`` of chunk ``index`` (C order in the full chunk shape) or
        more, as ``(first, flat)``: ``flat`` holds the chunk's elements from ``first``
        on. None where only the whole chunk can be decoded."""
        return None

    def _drop_finished(self, a: int, b: int) -> None:
        """Drop the chunks of elements ``[a, b)`` whose last element is before ``b``.

        A streaming reader has passed them: the kernel's page cache holds what was
        served, and a sequential reader does not come back; keeping them would only
        fill the cache with fresh memory (slow to touch on virtual machines) and push
        out what random readers use. Freed chunks are reused for the next decodes."""
        strides = strides_of(self.shape)
        for start, extent in flat_boxes(self.shape, a, b):
            for index in chunks_of_box(start, extent, self.chunks):
                last = sum(min((i + 1) * c, n) * st - st for i, c, n, st in zip(index, self.chunks, self.shape, strides))
                if last < b:
                    self.cache.discard(self.chunk_key(index))

    def _prefetch(self, a: int, b: int, room: int) -> None:
        """Submit the chunks of elements ``[a, b)`` nobody has yet, up to ``room`` bytes."""
        for start, extent in flat_boxes(self.shape, a, b):
            for index in chunks_of_box(start, extent, self.chunks):
                if room < self._chunk_bytes:
                    return
                if not self.cache.has(self.chunk_key(index)):
                    room -= self._chunk_bytes
                    _POOL.submit(self._prefetch_one, index)

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

    def chunk(self, index: Index, keep: frozenset[Hashable] | None = None) -> np.ndarray:
        """Chunk ``index`` from the cache, decoded on a miss; ``keep``: the chunk keys of
        the read in progress, which caching this one must not drop (default: this
        thread's read's)."""
        keep = keep if keep is not None else getattr(_local, "keep", None) or frozenset()
        return self.cache.get(self.chunk_key(index), lambda: self._checked_load(index), self.label, keep)  # type: ignore[no-any-return]

    def _checked_load(self, index: Index) -> np.ndarray:
        try:
            return np.asarray(self.load_chunk(index))
        except (VfsError, Deferred):
            raise
        except Exception as exc:  # a decoder or h5py failure: the read gets EIO
            message = f"{self.label}: cannot read chunk {index}: {type(exc).__name__}: {exc}"
            log_once(f"chunk:{self.label}", message)
            raise Unreadable(message) from exc

    def fill_box(self, start: Index, extent: Index, out: np.ndarray) -> None:
        def put(index: Index, data: np.ndarray) -> None:
            in_box, in_chunk = overlap(start, extent, index, self.chunks, self.shape)
            key: tuple[Any, ...] = (*in_chunk, Ellipsis)  # keeps 0-d chunks arrays
            out[in_box] = data[key]

        got = getattr(_local, "pending", None)
        # the chunks of this read, by index: a chunk in several boxes of one read is taken
        # once, even when it was too big for the cache to keep (see ChunkCache.get's keep)
        pending: dict[Index, Future[np.ndarray]] = {} if got is None else got
        parts: dict[Index, tuple[int, int, Future[Part] | None]] = getattr(_local, "parts", None) or {}
        for index in chunks_of_box(start, extent, self.chunks):
            if index in parts and self._put_part(index, parts, start, extent, out):
                continue
            future = pending.get(index)
            try:
                data = future.result() if future is not None else self.chunk(index)
            except Deferred:  # to be loaded by this thread (see Deferred)
                data = self.chunk(index)
            if future is None or future.exception() is not None:
                done: Future[np.ndarray] = Future()
                done.set_result(data)
                pending[index] = done
            put(index, data)


    def _put_part(self, index: Index, parts: dict[Index, tuple[int, int, Future[Part] | None]],
                  start: Index, extent: Index, out: np.ndarray) -> bool:
        """Copy the box's share of chunk ``index`` from its decoded part (decoded here if
        no pool thread has it, once for all the boxes of the read); False when the part
        could not be decoded (the caller takes the whole chunk)."""
        lo, hi, future = parts[index]
        try:
            got = future.result() if future is not None else None
        except Deferred:
            future = None
        if future is None:
            got = self._part(index, lo, hi)
            done: Future[Part] = Future()
            done.set_result(got)
            parts[index] = (lo, hi, done)
        if got is None:
            return False
        first, flat = got
        in_box, in_chunk = overlap(start, extent, index, self.chunks, self.shape)
        strides = strides_of(self.chunks)
        corner = sum(sl.start * st for sl, st in zip(in_chunk, strides)) - first
        shape = tuple(sl.stop - sl.start for sl in in_chunk)
        out[in_box] = np.lib.stride_tricks.as_strided(
            flat[corner:], shape, tuple(st * flat.itemsize for st in strides), writeable=False)
        return True


#: a decoded part of a chunk: (first element, the chunk's elements from there on)
Part = tuple[int, np.ndarray] | None
