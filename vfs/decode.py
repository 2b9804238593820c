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
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vfs.chunktable import ChunkEntry, ChunkTable  # noqa: F401  (ChunkEntry: re-exported)
from vfs.limits import MAX_CHUNK_BYTES, MAX_PART_BLOCKS
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
    #: for filters whose stored chunk is a run of independent blocks (bitshuffle): where
    #: the blocks are, and how a run of them decodes alone
    blocked: BlockCodec | None = None


@dataclass(frozen=True)
class Blocks:
    """Where the independently decodable blocks of one stored chunk are.

    Block ``k < full`` holds elements ``[k * block, (k + 1) * block)`` and is stored at
    bytes ``[starts[k], starts[k + 1])``; unit ``full`` is the tail (a shorter block and
    the last elements, possibly empty) up to ``starts[full + 1]``, the stored size."""

    itemsize: int
    block: int
    count: int
    starts: np.ndarray

    @property
    def full(self) -> int:
        return self.count // self.block

    @property
    def nbytes(self) -> int:  # for the chunk cache's byte budget
        return int(self.starts.nbytes) + 64

    def units(self, lo: int, hi: int) -> tuple[int, int]:
        """The first and last unit holding decoded bytes ``[lo, hi)``."""
        first = lo // self.itemsize // self.block
        last = min((-(-hi // self.itemsize) - 1) // self.block, self.full)
        return first, last

    def elements(self, first: int, last: int) -> int:
        """Elements decoded from units ``first..last``."""
        return (self.count if last >= self.full else (last + 1) * self.block) - first * self.block


class BlockCodec:
    """Interface of a filter whose stored chunk is a run of independent blocks."""

    def blocks(self, stored: Buffer, size: int) -> Blocks:
        """The block layout of a stored chunk of ``size`` decoded bytes."""
        raise NotImplementedError

    def decode_run(self, piece: Buffer, layout: Blocks, first: int, last: int) -> np.ndarray:
        """Units ``first..last`` decoded from their stored bytes ``piece``."""
        raise NotImplementedError


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
    native = _UINT.get(itemsize) if imagecodecs is not None else None

    def decode(data: Buffer, size: int | None) -> Buffer:
        raw = np.frombuffer(data, np.uint8)
        n = raw.size // itemsize
        if itemsize <= 1 or n <= 1:
            return raw
        out = np.empty(raw.size, np.uint8)
        if native is not None:  # SIMD, about 4x NumPy's transpose (measured in docs/benchmarks.md)
            imagecodecs.byteshuffle_decode(raw[: n * itemsize].view(native), out=out[: n * itemsize].view(native))
        else:
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


class _Bitshuffle(BlockCodec):
    """The bitshuffle filter (none, LZ4 or Zstd inside), decoded by the ``bitshuffle``
    package.

    A stored chunk is blocks of ``block`` elements, each bit-transposed on its own (and,
    with LZ4 or Zstd, compressed on its own behind a 4-byte big-endian size, after a
    12-byte header of total bytes and block bytes), then at most one shorter block (a
    multiple of 8 elements) and the last ``n % 8`` elements as they are. A run of whole
    blocks, or the blocks from any one to the end, is a valid stream of its own."""

    def __init__(self, elem: int, block: int, comp: int) -> None:
        self.elem, self.comp = elem, comp
        self.dtype = np.dtype(_UINT[elem])
        self.block = block or _default_block(elem)  # uncompressed chunks: from the filter's data

    def _header(self, raw: np.ndarray, size: int | None) -> tuple[int, int]:
        """(elements, block elements) of a compressed chunk."""
        if raw.size < 12:
            raise DecodeError("bitshuffle: chunk shorter than its header")
        total, block_bytes = struct.unpack_from(">QI", raw.data, 0)
        if (size is not None and total != size) or total > MAX_CHUNK_BYTES or total % self.elem:
            raise DecodeError(f"bitshuffle: header says {total} bytes, expected {size}")
        block = block_bytes // self.elem
        if block_bytes % self.elem or block <= 0 or block % 8:
            raise DecodeError(f"bitshuffle: block of {block_bytes} bytes")
        return total // self.elem, block

    def _run(self, raw: np.ndarray, count: int, block: int) -> np.ndarray:
        if self.comp == 0:
            out = bitshuffle.bitunshuffle(raw.view(self.dtype), block)
        else:
            fn = bitshuffle.decompress_lz4 if self.comp == 2 else bitshuffle.decompress_zstd
            out = fn(raw, (count,), self.dtype, block)
        return np.ascontiguousarray(out).view(np.uint8).reshape(-1)

    def decode(self, data: Buffer, size: int | None) -> Buffer:
        raw = np.frombuffer(data, np.uint8)
        if self.comp == 0:
            if raw.size % self.elem:
                raise DecodeError("bitshuffle: size is not a whole number of elements")
            return _sized(self._run(raw, raw.size // self.elem, self.block), size, "bitshuffle")
        total, block = self._header(raw, size)
        return _sized(self._run(raw[12:], total, block), size, "bitshuffle")

    def blocks(self, stored: Buffer, size: int) -> Blocks:
        raw = np.frombuffer(stored, np.uint8)
        if self.comp == 0:
            if raw.size != size or size % self.elem:
                raise DecodeError("bitshuffle: stored size is not the chunk's")
            n, block = size // self.elem, self.block
            steps = np.arange(n // block + 1, dtype=np.int64) * (block * self.elem)
            return Blocks(self.elem, block, n, np.append(steps, size))
        n, block = self._header(raw, size)
        if n // block > MAX_PART_BLOCKS:  # bounded: walking the block sizes is a Python loop
            raise DecodeError(f"bitshuffle: {n // block} blocks in a chunk")
        view, pos, starts = raw.data, 12, [12]
        for _ in range(n // block):  # each block's stored size, one after the other
            if pos + 4 > raw.size:
                raise DecodeError("bitshuffle: a block runs past the stored chunk")
            pos += 4 + struct.unpack_from(">I", view, pos)[0]
            starts.append(pos)
        if pos > raw.size:
            raise DecodeError("bitshuffle: a block runs past the stored chunk")
        starts.append(raw.size)
        return Blocks(self.elem, block, n, np.array(starts, np.int64))

    def decode_run(self, piece: Buffer, layout: Blocks, first: int, last: int) -> np.ndarray:
        count = layout.elements(first, last)
        out = self._run(np.frombuffer(piece, np.uint8), count, layout.block)
        if out.size != count * self.elem:
            raise DecodeError(f"bitshuffle: decoded {out.size} bytes of blocks, expected {count * self.elem}")
        return out


def _default_block(elem: int) -> int:
    """bitshuffle's block size where the filter leaves it to the library (``nelems=0``):
    ``bshuf_default_block_size``, 8 KiB of elements, a multiple of 8, at least 128."""
    return max(8192 // elem // 8 * 8, 128)


def _bitshuffle(cd: tuple[int, ...]) -> _Bitshuffle | None:
    elem = cd[2] if len(cd) > 2 else 0
    comp = cd[4] if len(cd) > 4 else 0
    block = cd[3] if len(cd) > 3 else 0
    if elem not in _UINT or comp not in (0, 2, 3) or block % 8:
        return None
    return _Bitshuffle(elem, block, comp)


def _step(filter_id: int, cd: tuple[int, ...], itemsize: int) -> Step | None:
    """The decoder of one filter, or None when it is not handled here."""
    if filter_id == DEFLATE:
        return Step(filter_id, _deflate, False)
    if filter_id == SHUFFLE:
        return Step(filter_id, _unshuffle(cd[0] if cd else itemsize), True)
    if filter_id == FLETCHER32:
        return Step(filter_id, _fletcher32, False)
    if filter_id == BITSHUFFLE and bitshuffle is not None:
        codec = _bitshuffle(cd)
        return Step(filter_id, codec.decode, False, codec) if codec is not None else None
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

    @property
    def blocked(self) -> BlockCodec | None:
        """The block codec where part of a chunk can be decoded alone: a pipeline of one
        filter whose stored chunks are runs of independent blocks (bitshuffle)."""
        return self.steps[0].blocked if len(self.steps) == 1 else None

    def blocks(self, stored: Buffer, size: int, mask: int = 0) -> Blocks:
        """The block layout of a stored chunk (see :meth:`decode_part`)."""
        codec = self.blocked
        if codec is None or mask & 1 or size > MAX_CHUNK_BYTES:
            raise DecodeError("this chunk decodes whole only")
        try:
            return codec.blocks(stored, size)
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError(f"blocks: {type(exc).__name__}: {exc}") from exc

    def decode_part(self, piece: Buffer, layout: Blocks, first: int, last: int) -> np.ndarray:
        """Units ``first..last`` of a chunk (decoded bytes ``[starts..]`` of
        :meth:`Blocks.units`), decoded from their stored bytes alone: a page fault in a
        big chunk costs the blocks of the pages the kernel asked for, not the chunk."""
        codec = self.blocked
        if codec is None or not 0 <= first <= last <= layout.full:
            raise DecodeError(f"units {first}..{last} of a chunk of {layout.full} blocks")
        try:
            return codec.decode_run(piece, layout, first, last)
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError(f"blocks: {type(exc).__name__}: {exc}") from exc


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

