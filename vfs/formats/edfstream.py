"""Byte streams an EDF index reads from: a plain file, or a whole-file gzip/bzip2 one.

Both answer ``read(offset, size)`` on the *decompressed* bytes (short only at the end
of the stream), so the header index and the frame readers never care whether the file
was compressed.

A compressed stream is cut into blocks of ``BLOCK`` decompressed bytes, decoded on
demand and kept in the shared chunk cache, keyed by the file's identity: while a block
stays cached it is never decoded again. For gzip, the decoder state at every block
boundary is saved once (``zlib`` decompressors can be copied; about 40 KiB each), so a
block evicted from the cache, or a block far into the file, is decoded from the nearest
boundary rather than from the start of the file: random frames of a 4 GB ``.edf.gz``
cost one block each. bzip2 decoders cannot be copied: they are only driven forwards,
every block decoded on the way is cached, and a block evicted behind the decoder makes
it restart from the beginning (logged once).
"""

from __future__ import annotations

import bz2
import os
import threading
import zlib
from collections.abc import Hashable
from typing import Any, Protocol

from vfs.cache import ChunkCache
from vfs.errors import Unreadable
from vfs.formats.sniff import BZIP2_MAGIC, GZIP_MAGIC
from vfs.identity import SourceIdentity, checked_pread
from vfs.logutil import log_once

BLOCK = 8 << 20
IN_CHUNK = 1 << 20


class Stream(Protocol):
    """Ranged reads of a file's (decompressed) bytes."""

    label: str

    def read(self, offset: int, size: int) -> bytes: ...


def pread_path(path: str, offset: int, size: int, label: str, identity: SourceIdentity | None = None) -> bytes:
    """``size`` bytes at ``offset`` (fewer at the end of the file); Unreadable on OSError
    or when the file is no longer the version ``identity`` describes."""
    return checked_pread(path, identity, size, offset, label)


class PlainStream:
    """An uncompressed file, read with ``pread`` (the kernel's page cache is its cache)."""

    def __init__(self, path: str, label: str, identity: SourceIdentity | None = None) -> None:
        self.path = path
        self.label = label
        self.identity = identity

    def read(self, offset: int, size: int) -> bytes:
        if size <= 0:
            return b""
        return pread_path(self.path, offset, size, self.label, self.identity)


class _Cursor:
    """A decoder positioned in the compressed file: ``in_pos`` is the next input byte."""

    __slots__ = ("decoder", "in_pos")

    def __init__(self, decoder: Any, in_pos: int) -> None:
        self.decoder = decoder
        self.in_pos = in_pos


class CompressedStream:
    """The decompressed bytes of a gzip or bzip2 file, served block by block."""

    def __init__(self, path: str, kind: str, key: Hashable, cache: ChunkCache, label: str,
                 block: int = BLOCK, identity: SourceIdentity | None = None) -> None:
        if kind not in ("gzip", "bz2"):
            raise ValueError(f"unknown compression {kind!r}")
        self.path = path
        self.kind = kind
        self.key = key
        self.cache = cache
        self.label = label
        self.block = block
        self.identity = identity
        self.total: int | None = None  # decompressed size, once the end was reached
        self.decoded_blocks = 0  # how many blocks were decoded (tests, benchmarks)
        self._lock = threading.RLock()
        self._checkpoints: list[_Cursor] = [_Cursor(self._new_decoder(), 0)]  # gzip: one per block
        self._front: tuple[int, _Cursor] = (0, _Cursor(self._new_decoder(), 0))  # bz2: next block

    # -- decoding ---------------------------------------------------------------------
    def _new_decoder(self) -> Any:
        if self.kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return bz2.BZ2Decompressor()

    def _magic(self) -> bytes:
        return GZIP_MAGIC if self.kind == "gzip" else BZIP2_MAGIC

    def _advance(self, cursor: _Cursor, want: int, fd: int) -> bytes:
        """Decode up to ``want`` bytes from ``cursor`` (moved along); fewer at the end."""
        out = bytearray()
        while len(out) < want:
            dec = cursor.decoder
            if dec.eof:  # next member of a concatenated file, or the end
                if os.pread(fd, len(self._magic()), cursor.in_pos) != self._magic():
                    break
                dec = cursor.decoder = self._new_decoder()
            if self.kind == "bz2" and not dec.needs_input:
                chunk = b""  # bz2 still holds input taken earlier
            else:
                chunk = os.pread(fd, IN_CHUNK, cursor.in_pos)
                if not chunk:
                    log_once(f"zeof:{self.label}", f"{self.label}: compressed stream ends early (truncated file?)")
                    break
            try:
                piece = dec.decompress(chunk, want - len(out))
            except (zlib.error, OSError, EOFError, ValueError) as exc:
                raise Unreadable(f"{self.label}: corrupt {self.kind} data near byte {cursor.in_pos}: {exc}") from exc
            # what was not taken: after the end of a member, the bytes that follow it;
            # before, zlib hands back its unconsumed tail while bz2 keeps (takes) it all
            if dec.eof:
                left = len(dec.unused_data)
            else:
                left = len(dec.unconsumed_tail) if self.kind == "gzip" else 0
            cursor.in_pos += len(chunk) - left
            out += piece
        return bytes(out)

    def _decode(self, b: int) -> bytes:
        """Decompressed block ``b`` (shorter at the end of the stream, empty past it)."""
        if self.total is not None and b * self.block >= self.total:
            return b""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if self.identity is not None:
                self.identity.check_fd(fd, self.label)
            data = self._decode_gzip(b, fd) if self.kind == "gzip" else self._decode_bz2(b, fd)
            if self.identity is not None:
                self.identity.check_fd(fd, self.label)
            return data
        finally:
            os.close(fd)

    def _finish(self, b: int, data: bytes) -> bytes:
        self.decoded_blocks += 1
        if len(data) < self.block:
            self.total = b * self.block + len(data)
        return data

    def _keep(self, b: int, data: bytes) -> None:
        """Cache a block decoded on the way to another one, so it is not decoded twice."""
        self.decoded_blocks += 1
        self.cache.get((self.key, "zblock", b), lambda: data, self.label)

    def _decode_gzip(self, b: int, fd: int) -> bytes:
        start = min(b, len(self._checkpoints) - 1)
        saved = self._checkpoints[start]
        cursor = _Cursor(saved.decoder.copy(), saved.in_pos)
        for i in range(start, b + 1):
            data = self._advance(cursor, self.block, fd)
            if len(data) < self.block:
                self._finish(i, data)
                return data if i == b else b""
            if i + 1 == len(self._checkpoints):
                self._checkpoints.append(_Cursor(cursor.decoder.copy(), cursor.in_pos))
            if i < b:
                self._keep(i, data)
        return self._finish(b, data)

    def _decode_bz2(self, b: int, fd: int) -> bytes:
        front_block, cursor = self._front
        if front_block > b:
            log_once(f"bz2restart:{self.label}", f"{self.label}: bzip2 block evicted from the cache; "
                     "decoding again from the start (raise --cache-size to avoid this)")
            front_block, cursor = 0, _Cursor(self._new_decoder(), 0)
        while True:
            data = self._advance(cursor, self.block, fd)
            self._front = (front_block + 1, cursor)
            if front_block == b or len(data) < self.block:
                self._finish(front_block, data)
                return data if front_block == b else b""
            self._keep(front_block, data)
            front_block += 1

    # -- reading ----------------------------------------------------------------------
    def block_data(self, b: int) -> bytes:
        """Block ``b`` from the cache, decoding it (once) on a miss."""
        with self._lock:
            data: bytes = self.cache.get((self.key, "zblock", b), lambda: self._decode(b), self.label)
            return data

    def read(self, offset: int, size: int) -> bytes:
        if size <= 0:
            return b""
        end = offset + size
        if self.total is not None:
            end = min(end, self.total)
        parts = []
        pos = offset
        while pos < end:
            b, inner = divmod(pos, self.block)
            data = self.block_data(b)
            piece = data[inner : inner + (end - pos)]
            if not piece:
                break
            parts.append(piece)
            pos += len(piece)
            if len(data) < self.block:
                break
        return b"".join(parts)
