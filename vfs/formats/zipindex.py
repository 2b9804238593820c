"""A zip file's central directory, read in one piece and parsed in a tight loop.

:mod:`zipfile` builds a ``ZipInfo`` object per member (about 30 us each): a 40 GB zarr
ZipStore with 100,000 chunk members would take seconds to list. This reads the end
record (zip64 included), then the whole directory with one ``pread``, and keeps per member
only each member's name and where its entry is; method, sizes and offset are decoded
when that member is read. Stdlib only, so the sniffer can use it too; the last few indexes
are kept (keyed by the file's identity) so sniffing, probing and opening parse once.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import OrderedDict
from typing import NamedTuple

from vfs.errors import Unreadable
from vfs.limits import MAX_ZIP_DIRECTORY

EOCD = struct.Struct("<4sHHHHIIH")
EOCD64_LOCATOR = struct.Struct("<4sIQI")
EOCD64 = struct.Struct("<4sQHHIIQQQQ")
CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
MAX_COMMENT = 65535
KEPT = 8


class Member(NamedTuple):
    method: int
    flags: int
    compressed: int
    size: int
    header_offset: int


def _zip64(extra: bytes, size: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Sizes and offset from the zip64 extra field where the 32-bit fields overflowed."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            values = list(struct.unpack_from(f"<{length // 8}Q", extra, pos + 4))
            if size == 0xFFFFFFFF and values:
                size = values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
            break
        pos += 4 + length
    return size, csize, offset


def _directory(fd: int, file_size: int, where: str) -> bytes:
    tail_size = min(file_size, EOCD.size + MAX_COMMENT)
    tail = os.pread(fd, tail_size, file_size - tail_size)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + EOCD.size > len(tail):
        raise Unreadable(f"{where}: no zip end record")
    _, _, _, _, count, cd_size, cd_offset, _ = EOCD.unpack_from(tail, pos)
    if count == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        loc = pos - EOCD64_LOCATOR.size
        if loc < 0 or tail[loc:loc + 4] != b"PK\x06\x07":
            raise Unreadable(f"{where}: zip64 end record locator missing")
        eocd64_at = EOCD64_LOCATOR.unpack_from(tail, loc)[2]
        rec = os.pread(fd, EOCD64.size, eocd64_at)
        if len(rec) != EOCD64.size or rec[:4] != b"PK\x06\x06":
            raise Unreadable(f"{where}: zip64 end record missing")
        cd_size, cd_offset = EOCD64.unpack(rec)[8:10]
    if cd_size > MAX_ZIP_DIRECTORY or cd_offset + cd_size > file_size:
        raise Unreadable(f"{where}: zip directory of {cd_size} bytes at {cd_offset} does not fit")
    data = os.pread(fd, cd_size, cd_offset)
    if len(data) != cd_size:
        raise Unreadable(f"{where}: zip directory cut short")
    return data


SHORT = struct.Struct("<8xH18xHHH")  # flags, name, extra and comment lengths


class ZipIndex:
    """Member name -> position of its directory entry; a :class:`Member` is decoded from
    the kept directory bytes only when asked for. A later member of the same name wins,
    as in :mod:`zipfile`. Names not flagged UTF-8 are cp437, as the zip format says."""

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            self.directory = _directory(fd, os.fstat(fd).st_size, path)
        finally:
            os.close(fd)
        self.path = path
        self.positions: dict[bytes, int] = {}
        data, pos, end, unpack = self.directory, 0, len(self.directory), SHORT.unpack_from
        while pos + CENTRAL.size <= end:
            flags, nlen, xlen, clen = unpack(data, pos)
            start = pos + CENTRAL.size
            name = data[start:start + nlen]
            if not flags & 0x800 and not name.isascii():
                name = name.decode("cp437").encode("utf-8", "surrogateescape")
            self.positions[name] = pos
            pos = start + nlen + xlen + clen

    def __contains__(self, name: str) -> bool:
        return name.encode("utf-8", "surrogateescape") in self.positions

    def __len__(self) -> int:
        return len(self.positions)

    def names_ending(self, suffixes: tuple[str, ...]) -> list[str]:
        """The member names that end with one of ``suffixes`` (metadata keys)."""
        ends = tuple(x.encode() for x in suffixes)
        return [n.decode("utf-8", "surrogateescape") for n in self.positions if n.endswith(ends)]

    def names_under(self, prefix: str) -> list[str]:
        """The member names that start with ``prefix`` (one pass over the names)."""
        start = prefix.encode("utf-8", "surrogateescape")
        return [n.decode("utf-8", "surrogateescape") for n in self.positions if n.startswith(start)]

    def get(self, name: str) -> Member | None:
        pos = self.positions.get(name.encode("utf-8", "surrogateescape"))
        if pos is None:
            return None
        (sig, _, _, flags, method, _, _, _, csize, size, nlen, xlen, _, _, _, _, offset) = \
            CENTRAL.unpack_from(self.directory, pos)
        if sig != b"PK\x01\x02":
            raise Unreadable(f"{self.path}: bad zip directory entry at {pos}")
        if 0xFFFFFFFF in (csize, size, offset):
            extra_at = pos + CENTRAL.size + nlen
            size, csize, offset = _zip64(self.directory[extra_at:extra_at + xlen], size, csize, offset)
        return Member(method, flags, csize, size, offset)


_cache: OrderedDict[tuple[str, int, int, int, int], ZipIndex] = OrderedDict()
_lock = threading.Lock()


def index(path: str, st: os.stat_result) -> ZipIndex:
    """The :class:`ZipIndex` of ``path``, remembered for the last few files (by path and
    identity)."""
    key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    members = ZipIndex(path)
    with _lock:
        _cache[key] = members
        while len(_cache) > KEPT:
            _cache.popitem(last=False)
    return members
