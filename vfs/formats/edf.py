"""EDF files (``.edf``, ``.edf.gz``, ``.edf.bz2``, any name) as folders.

The tree is the one of :mod:`vfs.formats.imagetree`. Frame data are never loaded
through fabio: the header index (:mod:`vfs.formats.edfparse`) knows where each frame's
bytes are, and a read of frame k reads frame k's bytes only: straight from the file
with ``pread`` when it is uncompressed, from the decompressed blocks of the shared
chunk cache for a whole-file gzip/bzip2 file (:mod:`vfs.formats.edfstream`), and from
one cached decoded frame when the header says ``Compression = gzip|zlib|bz2``.

Data are served in the file's byte order (``.npy`` files say ``>u2`` for a
HighByteFirst file). A frame whose bytes are missing (a truncated file) is listed with
its full size and header; reading the missing part gives EIO, logged once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vfs.arrays import ArraySource, placed
from vfs.cache import ChunkCache
from vfs.context import Context
from vfs.errors import Unreadable
from vfs.formats.edfparse import EdfIndex, Frame, decompress, problem_message
from vfs.formats.edfstream import CompressedStream, PlainStream, Stream, pread_path
from vfs.formats.imagetree import ImageFolder, ModelBase, kept_keys
from vfs.formats.sniff import compression_of, read_head
from vfs.logutil import log_once
from vfs.nodes import Directory
from vfs.selection import Index, strides_of

PROBE_BLOCK = 64 << 10


class EdfModel(ModelBase):
    """One EDF file: its index, its frames as array sources (see ImageModel)."""

    def __init__(self, path: str, st: os.stat_result, ctx: Context, probing: bool = False) -> None:
        super().__init__("edf", path, st, ctx)
        kind = compression_of(read_head(path, 4))
        self.stream: Stream = PlainStream(path, path, self.identity)
        if kind and probing:  # decode just the start, and keep it out of the shared cache
            self.stream = CompressedStream(path, kind, self.key, ChunkCache(PROBE_BLOCK * 4), path, PROBE_BLOCK)
        elif kind:
            self.stream = CompressedStream(path, kind, self.key, ctx.cache, path, identity=self.identity)
        self.index = EdfIndex(self.stream, path, path, check_data=not probing)

    # -- ImageModel ----------------------------------------------------------------------
    def indexed_frames(self) -> int:
        """Frames indexed so far (what the index holds; nothing is read)."""
        return len(self.index.frames)

    def count(self) -> int:
        return self.index.count()

    def header(self, k: int) -> dict[str, str]:
        return self.index.keys(k)

    def header_text(self) -> bytes:
        return self.index.header_text()

    def frame_source(self, k: int) -> ArraySource | str:
        frame = self.index.frame(k)
        if frame.problem or frame.dtype is None:
            return problem_message(self.label, frame)
        return EdfArray(self, [k], frame.shape, frame.dtype, False, f"{self.label}[{k}]",
                        lambda: kept_keys(self.header(k)))

    def stack_source(self) -> ArraySource | str | None:
        n = self.count()
        if n == 0:
            return None
        first = self.index.frames[0]
        if n == 1:
            return self.frame_source(0)
        if first.dtype is None or any(f.shape != first.shape or f.dtype != first.dtype for f in self.index.frames):
            return None
        return EdfArray(self, list(range(n)), first.shape, first.dtype, True, f"{self.label}[:]",
                        lambda: kept_keys(self.header(0)))

    # -- frame bytes ---------------------------------------------------------------------
    def frame_bytes(self, k: int, lo: int, hi: int) -> bytes:
        """Bytes ``[lo, hi)`` of frame ``k``'s decoded data, in the file's byte order."""
        frame = self.index.frames[k]
        hi = min(hi, frame.nbytes)
        if lo >= hi:
            return b""
        if frame.problem:
            raise Unreadable(f"{self.label}: frame {k}: {frame.problem}")
        if frame.compression:
            data: bytes = self.ctx.cache.get((self.key, "frame", k), lambda: self._decode(frame), self.label)
            got = data[lo:hi]
        elif frame.external:
            ext_path, ext_offset = frame.external
            self.ctx.check_readable(ext_path, f"{self.label}: frame {k}: EDF_BinaryFileName")
            got = pread_path(ext_path, ext_offset + lo, hi - lo, self.label)
        else:
            if hi > frame.blob_size:
                return self._missing(frame, "its data block is smaller than its image")
            got = self.stream.read(frame.data_offset + lo, hi - lo)
        if len(got) < hi - lo:
            return self._missing(frame, "the file ends inside its data (truncated)")
        return got

    def _missing(self, frame: Frame, why: str) -> bytes:
        message = f"{self.label}: frame {frame.index}: {why}"
        log_once(message, message)
        raise Unreadable(message)

    def _decode(self, frame: Frame) -> bytes:
        # compressed data never take much more room than the data they hold
        blob = self.stream.read(frame.data_offset, min(frame.blob_size, frame.nbytes + frame.nbytes // 8 + (64 << 10)))
        try:
            return decompress(frame.compression or "", blob, frame.nbytes)[: frame.nbytes]
        except Exception as exc:
            raise Unreadable(f"{self.label}: frame {frame.index}: {frame.compression} data: {exc}") from exc


class EdfArray(ArraySource):
    """Frames of one EDF file as one array: a single frame, or all of them stacked.

    A stack's chunks are its frames; a byte range maps to frames by division, and each
    frame is read from its own offset, so reading frame k touches frame k only.
    """

    def __init__(self, model: EdfModel, frames: list[int], frame_shape: Index, dtype: np.dtype[Any],
                 stacked: bool, label: str, attrs_loader: Callable[[], Mapping[str, str]]) -> None:
        shape = (len(frames), *frame_shape) if stacked else tuple(frame_shape)
        chunks = (1, *frame_shape) if stacked else tuple(frame_shape)
        super().__init__(shape, dtype, chunks, label, attrs_loader)  # header keys of the (first) frame
        self.model = model
        self.frames = frames
        self.frame_nbytes = math.prod(frame_shape) * self.dtype.itemsize

    def read_bytes(self, p: int, q: int) -> bytes:
        q = min(q, self.nbytes)
        fb = self.frame_nbytes
        if p >= q or fb == 0:
            return b""
        parts = []
        for i in range(p // fb, (q - 1) // fb + 1):
            base = i * fb
            parts.append(self.model.frame_bytes(self.frames[i], max(p - base, 0), min(q - base, fb)))
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read_flat(self, a: int, b: int, out: np.ndarray | None = None) -> np.ndarray:
        a, b = max(a, 0), min(b, self.size)
        if a >= b:
            return np.empty(0, self.dtype)
        isz = self.dtype.itemsize
        return placed(np.frombuffer(self.read_bytes(a * isz, b * isz), self.dtype), out)

    def fill_box(self, start: Index, extent: Index, out: np.ndarray) -> None:
        if not all(extent):
            return
        strides = strides_of(self.shape)
        first = sum(s * st for s, st in zip(start, strides))
        last = sum((s + e - 1) * st for s, e, st in zip(start, extent, strides))
        flat = self.read_flat(first, last + 1)
        isz = self.dtype.itemsize
        out[...] = np.lib.stride_tricks.as_strided(flat, tuple(extent), tuple(st * isz for st in strides),
                                                   writeable=False)


def probe(path: str, ctx: Context) -> None:
    """Index the first frame: raises unless the file starts with an EDF image header."""
    st = os.stat(path)
    model = EdfModel(path, st, ctx, probing=True)
    frame = model.index.frame(0)
    if frame.refused:
        raise ValueError(frame.refused)
    if not frame.shape:
        raise ValueError("the first header has no Dim_1: not an image")


def open_folder(path: str, st: os.stat_result, ctx: Context, ino: int) -> Directory:
    return ImageFolder(EdfModel(path, st, ctx), ino)
