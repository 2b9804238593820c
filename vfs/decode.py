"""HDF5 filter pipelines decoded without HDF5: raw chunk bytes in, chunk bytes out.

HDF5 runs a dataset's filters (deflate, shuffle, bitshuffle, LZ4, ...) inside its own
library, and h5py serialises every call through one process-wide lock, so a mount that
reads compressed chunks through h5py uses one core and HDF5's plugin builds (generic
SSE2 code). Here a chunk's stored bytes (read with ``pread`` at the offset from the
chunk index) are decoded by maintained decoders that release the GIL, so several chunks
decode at once on a thread pool:

========================  ================================================================
HDF5 filter (id)          decoder
========================  ================================================================
deflate / gzip (1)        ``imagecodecs.deflate_decode`` (libdeflate), ``zlib`` if absent
shuffle (2)               NumPy transpose of the byte planes
fletcher32 (3)            checksum verified with NumPy, then stripped
LZF (32000)               ``imagecodecs.lzf_decode``
Blosc (32001)             ``imagecodecs.blosc_decode``
LZ4 (32004)               ``imagecodecs.lz4h5_decode`` (the HDF5 LZ4 plugin's block format)
bitshuffle (32008)        the ``bitshuffle`` package (none, LZ4 or Zstd inside)
Zstd (32015)              ``imagecodecs.zstd_decode``
Blosc2 (32026)            ``blosc2`` (chunk or b2nd frame)
========================  ================================================================

The choice of decoders was measured (docs/benchmarks.md). A pipeline with any other
filter (szip, scale-offset, n-bit, unknown plugins) gets no :class:`Pipeline` and the
dataset is read through h5py. A chunk that fails to decode here (bad checksum, a stored
size that does not match, a decoder error) is not an error yet: the caller falls back to
h5py for that chunk, so HDF5 stays the authority on what a broken chunk reads as.
Nothing decodes to more than the chunk's declared size (``out=`` sizes everywhere).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vfs.chunktable import ChunkEntry, ChunkTable  # noqa: F401  (ChunkEntry: re-exported)
from vfs.limits import MAX_CHUNK_BYTES
from vfs.selection import Index

try:
    import imagecodecs
except ImportError:  # pragma: no cover - a dependency; without it those filters go to h5py
    imagecodecs = None  # type: ignore[assignment]
# the bitshuffle wheel decodes with OpenMP threads of its own; on top of the decode pool
# they only spin against each other (measured: a quarter of the mount's CPU in libgomp
# waits), so one OpenMP thread a decode unless the user says otherwise. Read by libgomp
# when it loads, hence before the import.
os.environ.setdefault("OMP_NUM_THREADS", "1")
try:
    import bitshuffle
except ImportError:  # pragma: no cover
    bitshuffle = None  # type: ignore[assignment]
try:
    import blosc2
except ImportError:  # pragma: no cover
    blosc2 = None  # type: ignore[assignment]

DEFLATE, SHUFFLE, FLETCHER32 = 1, 2, 3
LZF, BLOSC, LZ4, BITSHUFFLE, ZSTD, BLOSC2 = 32000, 32001, 32004, 32008, 32015, 32026

Buffer = Any  # bytes, memoryview or a uint8 ndarray


class DecodeError(Exception):
    """This chunk cannot be decoded here (the caller reads it through h5py instead)."""


@dataclass(frozen=True)
class Step:
    """One filter of a pipeline: ``decode(data, size)``; ``size`` is the decoded size
    when known (the chunk's size if no later-applied filter changes it), else None."""

    filter_id: int
    decode: Callable[[Buffer, int | None], Buffer]
    keeps_size: bool


def _sized(data: Buffer, size: int | None, what: str) -> Buffer:
    if size is not None and len(memoryview(data).cast("B")) != size:
        raise DecodeError(f"{what}: decoded {len(memoryview(data).cast('B'))} bytes, expected {size}")
    return data


def _deflate(data: Buffer, size: int | None) -> Buffer:
    if imagecodecs is not None and size is not None:
        return _sized(imagecodecs.deflate_decode(data, out=size), size, "deflate")
    out = zlib.decompressobj().decompress(data, size or MAX_CHUNK_BYTES)
    return _sized(out, size, "deflate")


def _unshuffle(itemsize: int) -> Callable[[Buffer, int | None], Buffer]:
    def decode(data: Buffer, size: int | None) -> Buffer:
        raw = np.frombuffer(data, np.uint8)
        n = raw.size // itemsize
        if itemsize <= 1 or n <= 1:
            return raw
        out = np.empty(raw.size, np.uint8)
        out[: n * itemsize].reshape(n, itemsize)[...] = raw[: n * itemsize].reshape(itemsize, n).T
        out[n * itemsize :] = raw[n * itemsize :]  # HDF5 leaves a partial element as it is
        return out
    return decode


def fletcher32(data: Buffer) -> int:
    """HDF5's Fletcher-32 of ``data`` (16-bit big-endian words, an odd last byte padded
    with zero), both halves reduced modulo 65535 into 0..65534."""
    raw = np.frombuffer(data, np.uint8)
    if raw.size % 2:
        raw = np.concatenate([raw, np.zeros(1, np.uint8)])
    words = raw.view(">u2").astype(np.int64)
    n = words.size
    sum1 = int(words.sum() % 65535)
    # sum2 = sum over k of (n - k) * w_k, in blocks so int64 never overflows
    sum2 = 0
    block = 1 << 20
    for s in range(0, n, block):
        w = words[s : s + block]
        weights = np.arange(n - s, n - s - w.size, -1, dtype=np.int64) % 65535
        sum2 = (sum2 + int((w * weights).sum() % 65535)) % 65535
    return (sum2 << 16) | sum1


def _fletcher32(data: Buffer, size: int | None) -> Buffer:
    raw = memoryview(data).cast("B")
    if len(raw) < 4:
        raise DecodeError("fletcher32: chunk shorter than its checksum")
    body, stored = raw[:-4], int.from_bytes(raw[-4:], "little")
    mine = fletcher32(body)
    if (stored >> 16) % 65535 != mine >> 16 or (stored & 0xFFFF) % 65535 != mine & 0xFFFF:
        raise DecodeError("fletcher32: checksum mismatch")  # h5py decides what that reads as
    return _sized(body, size, "fletcher32")


def _lzf(data: Buffer, size: int | None) -> Buffer:
    if size is None:
        raise DecodeError("lzf: decoded size unknown")
    return _sized(imagecodecs.lzf_decode(data, out=size), size, "lzf")


def _declared(what: str, declared: int, size: int | None) -> None:
    """Refuse a header's decoded size that differs from the chunk's or exceeds the limit
    before anything that large is allocated."""
    if (size is not None and declared != size) or declared > MAX_CHUNK_BYTES:
        raise DecodeError(f"{what}: header says {declared} bytes, expected {size}")


def _blosc(data: Buffer, size: int | None) -> Buffer:
    _declared("blosc", int.from_bytes(bytes(memoryview(data)[4:8]), "little"), size)
    return _sized(imagecodecs.blosc_decode(data, numthreads=1), size, "blosc")


def _lz4(data: Buffer, size: int | None) -> Buffer:
    declared = int.from_bytes(bytes(memoryview(data)[:8]), "big")
    _declared("lz4", declared, size)
    return _sized(imagecodecs.lz4h5_decode(data, out=declared), size, "lz4")


def _zstd(data: Buffer, size: int | None) -> Buffer:
    if size is None:
        raise DecodeError("zstd: decoded size unknown")
    return _sized(imagecodecs.zstd_decode(data, out=size), size, "zstd")


def _blosc2(data: Buffer, size: int | None) -> Buffer:
    raw = bytes(data)
    if b"b2frame" not in raw[:16]:  # one Blosc2 chunk
        _declared("blosc2", int.from_bytes(raw[4:8], "little"), size)
        out = np.frombuffer(blosc2.decompress(raw), np.uint8)
    else:
        frame = blosc2.schunk_from_cframe(raw, copy=False)
        if "b2nd" in frame.meta:  # a b2nd array (ndim > 1), stored padded to whole blocks
            arr = blosc2.ndarray_from_cframe(raw)
            _declared("blosc2", int(np.prod(arr.shape)) * arr.dtype.itemsize, size)
            out = np.ascontiguousarray(arr[...]).view(np.uint8).reshape(-1)
        else:  # a one-chunk super-chunk frame
            _declared("blosc2", int(frame.nbytes), size)
            out = np.frombuffer(frame[:], np.uint8)
    return _sized(out, size, "blosc2")


_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _bitshuffle(cd: tuple[int, ...]) -> Callable[[Buffer, int | None], Buffer] | None:
    elem = cd[2] if len(cd) > 2 else 0
    comp = cd[4] if len(cd) > 4 else 0
    if elem not in _UINT or comp not in (0, 2, 3):
        return None
    dtype = np.dtype(_UINT[elem])

    def decode(data: Buffer, size: int | None) -> Buffer:
        raw = np.frombuffer(data, np.uint8)
        if comp == 0:
            if raw.size % elem:
                raise DecodeError("bitshuffle: size is not a whole number of elements")
            block = cd[3] if len(cd) > 3 else 0
            out = bitshuffle.bitunshuffle(raw.view(dtype), block)
        else:
            if raw.size < 12:
                raise DecodeError("bitshuffle: chunk shorter than its header")
            total = int.from_bytes(raw[:8].tobytes(), "big")
            block_bytes = int.from_bytes(raw[8:12].tobytes(), "big")
            if (size is not None and total != size) or total > MAX_CHUNK_BYTES or total % elem:
                raise DecodeError(f"bitshuffle: header says {total} bytes, expected {size}")
            fn = bitshuffle.decompress_lz4 if comp == 2 else bitshuffle.decompress_zstd
            out = fn(raw[12:], (total // elem,), dtype, block_bytes // elem)
        return _sized(np.ascontiguousarray(out).view(np.uint8).reshape(-1), size, "bitshuffle")

    return decode


def _step(filter_id: int, cd: tuple[int, ...], itemsize: int) -> Step | None:
    """The decoder of one filter, or None when it is not handled here."""
    if filter_id == DEFLATE:
        return Step(filter_id, _deflate, False)
    if filter_id == SHUFFLE:
        return Step(filter_id, _unshuffle(cd[0] if cd else itemsize), True)
    if filter_id == FLETCHER32:
        return Step(filter_id, _fletcher32, False)
    if filter_id == BITSHUFFLE and bitshuffle is not None:
        fn = _bitshuffle(cd)
        return Step(filter_id, fn, False) if fn is not None else None
    if filter_id == BLOSC2 and blosc2 is not None:
        return Step(filter_id, _blosc2, False)
    if imagecodecs is None:
        return None
    table = {LZF: _lzf, BLOSC: _blosc, LZ4: _lz4, ZSTD: _zstd}
    fn2 = table.get(filter_id)
    return Step(filter_id, fn2, False) if fn2 is not None else None


@dataclass(frozen=True)
class Pipeline:
    """The decoders of a dataset's filters, in the order HDF5 applied them on write."""

    steps: tuple[Step, ...]

    @classmethod
    def of(cls, filters: list[tuple[int, tuple[int, ...]]], itemsize: int) -> Pipeline | None:
        """The pipeline for ``(filter id, client data)`` pairs, or None if one of them is
        not handled here (the dataset then goes through h5py)."""
        steps = []
        for filter_id, cd in filters:
            step = _step(int(filter_id), tuple(int(v) for v in cd), itemsize)
            if step is None:
                return None
            steps.append(step)
        return cls(tuple(steps))

    def decode(self, stored: Buffer, size: int, mask: int = 0) -> np.ndarray:
        """The ``size`` decoded bytes of a chunk stored as ``stored``, as a uint8 array.

        ``mask`` is the chunk's filter mask: a set bit means HDF5 skipped that filter
        when writing it, which is left to h5py (:class:`DecodeError`)."""
        if mask & ((1 << len(self.steps)) - 1):
            raise DecodeError(f"filter mask {mask:#x}: a filter was skipped for this chunk")
        if size > MAX_CHUNK_BYTES:
            raise DecodeError(f"chunk of {size} bytes")
        data = stored
        # the size after each step is known while every filter applied before it keeps size
        known = [all(s.keeps_size for s in self.steps[:i]) for i in range(len(self.steps))]
        for i in range(len(self.steps) - 1, -1, -1):
            try:
                data = self.steps[i].decode(data, size if known[i] else None)
            except DecodeError:
                raise
            except Exception as exc:  # a decoder's own error: corrupt data or a variant we do not know
                raise DecodeError(f"filter {self.steps[i].filter_id}: {type(exc).__name__}: {exc}") from exc
        out = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).reshape(-1)
        if out.size != size:
            raise DecodeError(f"decoded {out.size} bytes, expected {size}")
        return out


def read_chunk_index(dsid: Any, chunks: Index) -> ChunkTable:
    """Every written chunk of a chunked dataset: grid index -> (offset, size, filter mask),
    as a compact :class:`~vfs.chunktable.ChunkTable` over the dataset's current grid.

    One pass over HDF5's chunk index (``chunk_iter``; ``get_chunk_info`` per chunk where
    ``chunk_iter`` is missing); no data is read. Call with the h5py lock held."""
    table = ChunkTable(tuple(dsid.shape), chunks)

    def visit(info: Any) -> None:
        if info.byte_offset is not None:
            index = tuple(c // n for c, n in zip(info.chunk_offset, chunks))
            table.put(index, int(info.byte_offset), int(info.size), int(info.filter_mask))

    try:
        dsid.chunk_iter(visit)
    except (AttributeError, NotImplementedError):
        for i in range(dsid.get_num_chunks()):
            visit(dsid.get_chunk_info(i))
    return table


def filters_of(dcpl: Any) -> list[tuple[int, tuple[int, ...]]]:
    """``(filter id, client data)`` of each filter of a dataset creation property list."""
    out = []
    for i in range(dcpl.get_nfilters()):
        filter_id, _flags, cd, _name = dcpl.get_filter(i)
        out.append((int(filter_id), tuple(int(v) for v in cd)))
    return out

