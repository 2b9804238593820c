"""Array sources for HDF5 datasets.

* Uncompressed contiguous or chunked numeric data -> :class:`~vfs.arrays.RawSource`:
  bytes read with ``pread`` at the offsets HDF5 reports, without HDF5 on the read path.
* Filtered chunked numeric data whose filters :mod:`vfs.decode` knows ->
  :class:`DecodedSource`: stored chunks read with ``pread`` and decoded outside HDF5,
  several at once on the decode pool; any chunk it cannot decode goes through h5py.
* Everything else (filters, virtual datasets, compound and string types) ->
  :class:`H5ChunkedSource`: one chunk at a time through h5py, decoded chunks kept in the
  shared cache. Datasets without chunks get synthetic ~1 MiB chunks (see
  :func:`~vfs.selection.auto_chunks`) so a read never decodes more than it needs.
"""

from __future__ import annotations

import itertools
import os
import weakref
from collections.abc import Hashable
from typing import Any

import h5py
import numpy as np

from vfs.arrays import PART_SHARE, ArraySource, ChunkedSource, Deferred, in_worker
from vfs.rawarrays import RawSource
from vfs.cache import ChunkCache
from vfs.chunktable import ChunkTable
from vfs.decode import Blocks, DecodeError, Pipeline, filters_of, read_chunk_index
from vfs.errors import Unreadable
from vfs.formats.h5pool import H5_LOCK, POOL, indexable, tables
from vfs.identity import SourceIdentity
from vfs.limits import MAX_CHUNK_BYTES, STORED_CHUNK_SLACK
from vfs.logutil import log_once
from vfs.selection import Index, auto_chunks, chunk_slices, grow_chunks

RAW_MIN_CHUNK = 64 << 10
TINY_CHUNK = 16 << 10
GROWN_CHUNK = 256 << 10
#: raw chunk lookups between two through the cache (see :func:`_chunk_offsets`)
TOUCH_EVERY = 256


def clean_dtype(dt: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype without h5py's metadata (enum maps, vlen markers) and with its fields
    in offset order, so that ``numpy.save`` can describe it."""
    if dt.names:
        fields = sorted(((name, *dt.fields[name][:2]) for name in dt.names), key=lambda f: f[2])  # type: ignore[index]
        return np.dtype({
            "names": [f[0] for f in fields],
            "formats": [clean_dtype(f[1]) for f in fields],
            "offsets": [f[2] for f in fields],
            "itemsize": dt.itemsize,
        })
    if dt.subdtype is not None:
        base, shape = dt.subdtype
        return np.dtype((clean_dtype(base), shape))
    if dt.kind == "O":
        return np.dtype(object)
    return np.dtype(dt.str)


def zero_padded(data: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """``data`` as ``dtype`` with every padding byte zero (HDF5 leaves them undefined,
    and they would otherwise show whatever memory held before)."""
    out = np.zeros(data.shape, dtype)

    def copy(dst: np.ndarray, src: np.ndarray) -> None:
        for name in dst.dtype.names or ():
            if dst.dtype.fields[name][0].names:  # type: ignore[index]
                copy(dst[name], src[name])
            else:
                dst[name] = src[name]

    copy(out, data)
    return out


def element_layout(ds: h5py.Dataset) -> tuple[Index, np.dtype[Any]]:
    """Shape and dtype of the array a reader sees: array-element types add dimensions."""
    dt = clean_dtype(ds.dtype)
    shape = tuple(ds.shape)
    if dt.subdtype is not None:
        base, sub = dt.subdtype
        return shape + tuple(sub), base
    return shape, dt


class H5ChunkedSource(ChunkedSource):
    """A dataset read a chunk at a time through h5py (filters, VDS, compound types)."""

    def __init__(self, path: str, name: bytes, shape: Index, dtype: np.dtype[Any], chunks: Index,
                 label: str, key: Hashable, cache: ChunkCache, attrs: dict[str, Any] | None = None,
                 identity: SourceIdentity | None = None) -> None:
        super().__init__(shape, dtype, chunks, label, key, cache, attrs)
        self.path = path
        self.name = name
        self.identity = identity

    def load_chunk(self, index: Index) -> np.ndarray:
        with H5_LOCK:
            ds = POOL.get(self.path, self.identity)[self.name]
            nds = len(ds.shape)
            sel = chunk_slices(index[:nds], self.chunks[:nds], self.shape[:nds])
            data = ds[sel] if nds else ds[()]
        data = np.asarray(data)
        if self.dtype.names:
            data = zero_padded(data, self.dtype)
        elif data.dtype != self.dtype:
            data = data.view(self.dtype) if data.dtype.itemsize == self.dtype.itemsize else data.astype(self.dtype)
        # array-element types: the chunk spans the whole element dimensions
        extra = tuple(slice(0, n) for n in self.shape[nds:])
        return data[(Ellipsis, *extra)] if extra else data



class DecodedSource(H5ChunkedSource):
    """A filtered chunked dataset decoded outside HDF5 (see :mod:`vfs.decode`).

    The chunk index (offset, stored size, filter mask of every written chunk) is read
    once, on first use. A chunk is then one ``pread`` and a decode that releases the
    GIL, with no h5py lock on the way, so a request's chunks decode in parallel. HDF5
    stores edge chunks whole (full chunk shape); the part inside the array is kept.
    Unwritten chunks read as the fill value. A chunk that cannot be decoded here (a
    filter skipped by its filter mask, a checksum or size mismatch, a decoder error) is
    read through h5py instead, which stays the authority on what it contains.
    """

    parallel = True

    def __init__(self, path: str, name: bytes, shape: Index, dtype: np.dtype[Any], chunks: Index,
                 label: str, key: Hashable, cache: ChunkCache, pipeline: Pipeline, fill: Any,
                 attrs: dict[str, Any] | None = None, identity: SourceIdentity | None = None) -> None:
        super().__init__(path, name, shape, dtype, chunks, label, key, cache, attrs, identity)
        self.pipeline = pipeline
        self.fill = fill
        self.fallbacks = 0  # chunks read through h5py instead

    def read_flat(self, a: int, b: int, out: np.ndarray | None = None) -> np.ndarray:
        """As the base class, with the chunk index read first, by this thread: pool
        threads cannot take the h5py lock, and would hand every chunk back otherwise."""
        self.chunk_index()
        return super().read_flat(a, b, out)

    def chunk_index(self) -> ChunkTable:
        """The chunk offset table, kept in the tables' share of the cache (counted in
        --cache-size; read again after eviction)."""
        return _table(self.cache, self.key, self.path, self.name, self.identity, self.label)

    @property
    def partial(self) -> bool:  # type: ignore[override]
        return self.pipeline.blocked is not None

    def stored(self, index: Index, size: int, offset: int) -> bytes:
        """Stored bytes of chunk ``index`` (``size`` at ``offset``, a whole chunk or a run
        of its blocks): one ``pread``, in a file that must still be the version the
        chunk index was read from."""
        if size > self._chunk_bytes + STORED_CHUNK_SLACK or self._chunk_bytes > MAX_CHUNK_BYTES:
            raise DecodeError(f"stored size {size} for a chunk of {self._chunk_bytes} bytes")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if self.identity is not None:
                self.identity.check_fd(fd, self.label)
            stored = os.pread(fd, size, offset)
            if self.identity is not None:
                self.identity.check_fd(fd, self.label)
        finally:
            os.close(fd)
        if len(stored) != size:
            raise DecodeError(f"file ends at {offset + len(stored)}, chunk needs {offset + size}")
        return stored

    def load_part(self, index: Index, lo: int, hi: int) -> tuple[int, np.ndarray] | None:
        """The blocks of chunk ``index`` holding elements ``[lo, hi)``. The chunk's block
        layout is found once (the whole stored chunk read and its block sizes walked)
        and kept in the chunk cache, small; later parts read only their blocks."""
        entry = self.chunk_index().get(index)
        if entry is None or entry[2]:  # unwritten, or a filter skipped: the whole-chunk path
            return None
        offset, size, mask = entry
        whole: list[bytes] = []

        def layout() -> Blocks:
            whole.append(self.stored(index, size, offset))
            return self.pipeline.blocks(whole[0], self._chunk_bytes, mask)

        blocks: Blocks = self.cache.get((self.chunk_key(index), "blocks"), layout, f"{self.label} blocks")
        isz = self.dtype.itemsize
        first, last = blocks.units(lo * isz, hi * isz)
        if blocks.elements(first, last) * PART_SHARE > blocks.count:  # big blocks: decode whole, once
            return None
        a, b = int(blocks.starts[first]), int(blocks.starts[last + 1])
        piece = whole[0][a:b] if whole else self.stored(index, b - a, offset + a)
        flat = self.pipeline.decode_part(piece, blocks, first, last)
        start = first * blocks.block * blocks.itemsize
        if start % isz:
            return None
        return start // isz, flat[: flat.size // isz * isz].view(self.dtype)

    def load_chunk(self, index: Index) -> np.ndarray:
        clipped = tuple(slice(0, min(c, n - i * c)) for i, c, n in zip(index, self.chunks, self.shape))
        entry = self.chunk_index().get(index)
        if entry is None:
            return np.full(tuple(s.stop for s in clipped), self.fill, self.dtype)
        offset, size, mask = entry
        try:
            flat = self.pipeline.decode(self.stored(index, size, offset), self._chunk_bytes, mask)
        except Unreadable:  # the file changed since it was opened: EIO, not a fallback
            raise
        except (DecodeError, OSError) as exc:
            if in_worker():
                raise Deferred() from exc
            if mask == 0:
                log_once(f"decode:{self.label}", f"{self.label}: chunk {index} read through h5py: {exc}")
            self.fallbacks += 1
            return super().load_chunk(index)
        return flat.view(self.dtype).reshape(self.chunks)[clipped]


def fill_value(ds: h5py.Dataset) -> Any:
    """The dataset's fill value; 0 when the file leaves it undefined (HDF5 1.4-era
    writers), where h5py raises "fill value is undefined" but reads the data fine."""
    try:
        return ds.fillvalue
    except (OSError, ValueError, RuntimeError):
        return 0


def _external_count(dcpl: Any) -> int:
    try:
        return int(dcpl.get_external_count())
    except Exception:
        return 0


def make_source(path: str, ds: h5py.Dataset, name: bytes, label: str, key: Hashable, cache: ChunkCache,
                attrs: dict[str, Any] | None = None, identity: SourceIdentity | None = None) -> ArraySource:
    """The best source for dataset ``ds`` (call with :data:`H5_LOCK` held). Reads check
    the file against ``identity``, the version ``ds`` was opened from."""
    shape, dtype = element_layout(ds)
    nds = len(ds.shape)
    extra = shape[nds:]
    ds_chunks = tuple(ds.chunks) if ds.chunks else None
    raw = False
    try:
        dcpl = ds.id.get_create_plist()
        raw = _raw_layout(ds, dtype, dcpl)
    except Exception:
        raw = False
    if raw and ds_chunks is not None and int(np.prod(ds_chunks)) * dtype.itemsize < RAW_MIN_CHUNK:
        raw = False
    # reads outside h5py keep every chunk's offset in a table counted in the cache budget
    indexed = ds_chunks is None or indexable(cache, tuple(ds.shape), ds_chunks)
    raw = raw and indexed
    if raw:
        fill = fill_value(ds)
        if ds_chunks is None:
            offset = ds.id.get_offset()
            return RawSource(path, shape, dtype, shape, label, lambda idx: offset, fill, attrs, identity)
        return RawSource(path, shape, dtype, ds_chunks, label, _chunk_offsets(path, name, identity, cache, key, label),
                         fill, attrs, identity)
    pipeline = _pipeline(ds, dtype, ds_chunks) if indexed else None
    if pipeline is not None and ds_chunks is not None:
        return DecodedSource(path, name, shape, dtype, ds_chunks, label, key, cache, pipeline, ds.fillvalue, attrs,
                             identity)
    if ds_chunks:
        element = dtype.itemsize * max(int(np.prod(extra)), 1)
        chunks = ds_chunks
        if int(np.prod(ds_chunks)) * element < TINY_CHUNK:  # read tiny chunks in blocks
            chunks = grow_chunks(ds_chunks, shape[:nds], element, GROWN_CHUNK)
        chunks = chunks + extra
    else:
        chunks = auto_chunks(shape, dtype.itemsize)
    if ds_chunks is None and nds < len(shape):
        chunks = auto_chunks(shape[:nds], dtype.itemsize * max(int(np.prod(extra)), 1)) + extra
    return H5ChunkedSource(path, name, shape, dtype, chunks, label, key, cache, attrs, identity)


def _pipeline(ds: h5py.Dataset, dtype: np.dtype[Any], ds_chunks: Index | None) -> Pipeline | None:
    """The decoders for a filtered chunked numeric dataset whose filters are all known
    to :mod:`vfs.decode` and whose chunks are large enough to be worth a call each."""
    if ds_chunks is None or int(np.prod(ds_chunks)) * dtype.itemsize < TINY_CHUNK:
        return None
    try:
        dcpl = ds.id.get_create_plist()
        if dcpl.get_layout() != h5py.h5d.CHUNKED or not dcpl.get_nfilters() or _external_count(dcpl):
            return None
        if not _plain_numeric(ds, dtype):
            return None
        return Pipeline.of(filters_of(dcpl), dtype.itemsize)
    except Exception:
        return None


def _raw_layout(ds: h5py.Dataset, dtype: np.dtype[Any], dcpl: Any) -> bool:
    if dcpl.get_layout() not in (h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED):
        return False
    if dcpl.get_nfilters() or _external_count(dcpl):
        return False
    return _plain_numeric(ds, dtype)


def _plain_numeric(ds: h5py.Dataset, dtype: np.dtype[Any]) -> bool:
    """Whether the stored elements are exactly ``dtype``'s bytes (integers or floats of
    full precision, byte order included), so stored bytes can be served as they are."""
    if dtype.kind not in "biuf" or dtype.names or dtype.subdtype is not None:
        return False
    ftype = ds.id.get_type()
    if ftype.get_size() != dtype.itemsize or ftype.get_class() not in (h5py.h5t.INTEGER, h5py.h5t.FLOAT):
        return False
    if ftype.get_class() == h5py.h5t.INTEGER and ftype.get_precision() != 8 * dtype.itemsize:
        return False
    if ftype.get_class() == h5py.h5t.FLOAT and np.dtype(dtype).kind != "f":
        return False
    return True


def _chunk_offsets(path: str, name: bytes, identity: SourceIdentity | None, cache: ChunkCache, key: Hashable,
                   label: str) -> Any:
    """A ``chunk index -> file offset`` lookup for an unfiltered chunked dataset.

    The table is read on first use with ``chunk_iter`` (one pass over the chunk index,
    no data read) and kept in the tables' share of the cache; unwritten chunks are absent
    and read as fill value. A raw read looks up every chunk it touches, so lookups go
    through a weak reference to the table (a third of the cost of a cache lookup), and
    through the cache once every ``TOUCH_EVERY`` (which keeps it recently used): a table
    the cache dropped is not kept alive here, and is read again.
    """
    held: list[weakref.ref[ChunkTable]] = []  # the table last used, not kept alive by this
    uses = itertools.count()

    def lookup(index: Index) -> int | None:
        table = held[0]() if held else None
        if table is None or next(uses) % TOUCH_EVERY == 0:  # through the cache: counted, marked used
            table = _table(cache, key, path, name, identity, label)
            held[:] = [weakref.ref(table)]
        entry = table.get(index)
        return None if entry is None else entry[0]

    return lookup


def _table(cache: ChunkCache, key: Hashable, path: str, name: bytes, identity: SourceIdentity | None,
           label: str) -> ChunkTable:
    """A dataset's chunk offset table from the tables' share of ``cache``, read (under the
    h5py lock, so never by a decode-pool thread: :class:`Deferred`) when missing."""
    part = tables(cache)
    table_key = (key, "chunk table")
    if in_worker():
        found = part.peek(table_key)
        if found is None:
            raise Deferred()
        return found  # type: ignore[no-any-return]

    def read() -> ChunkTable:
        with H5_LOCK:
            ds = POOL.get(path, identity)[name]
            return read_chunk_index(ds.id, tuple(ds.chunks))

    return part.get(table_key, read, label)
