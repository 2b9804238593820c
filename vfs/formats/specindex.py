"""Where the scans of a SPEC file are: an index of byte offsets, built in one pass.

:func:`build_index` makes one pass over the bytes with ``bytes.find`` (C speed, no
per-line Python) and records where each block starts: a ``#S`` line starts a scan, a
``#F`` line starts a file header, and so does an ``#E`` line met outside a header
(SPEC writes ``#E`` when it starts a new header, sometimes without ``#F``). Only bytes
up to the last newline are indexed: a line still being written is not data yet.
:func:`extend_index` resumes from the start of the last block when the file grew.
Scans are then parsed one at a time by :mod:`vfs.formats.specparse`.
"""

from __future__ import annotations

import itertools
import mmap
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from vfs.limits import MAX_SCANS
from vfs.logutil import log_once

_EVENT = re.compile(rb"\n#[SFE]")
_SCAN_NUMBER = re.compile(rb"#S[ \t]*([+-]?\d+)")


@dataclass(frozen=True, slots=True)
class Block:
    """A header block or a scan: its kind, where it starts, and for scans its key."""

    kind: str  # "header" or "scan"
    offset: int
    number: int = 0
    order: int = 0
    header: int = -1  # for scans: index (into SpecIndex.blocks) of the file header

    @property
    def key(self) -> str:
        return f"{self.number}.{self.order}"


@dataclass
class SpecIndex:
    """Where the blocks of a SPEC file start; ``end`` is how many bytes were indexed."""

    blocks: list[Block] = field(default_factory=list)
    end: int = 0
    #: whether scans were left out of the index (more than ``limits.MAX_SCANS``)
    dropped: bool = False

    def block_end(self, i: int) -> int:
        return self.blocks[i + 1].offset if i + 1 < len(self.blocks) else self.end

    def scans(self) -> list[int]:
        """Positions in ``blocks`` of the scans, in file order."""
        return [i for i, b in enumerate(self.blocks) if b.kind == "scan"]


Text = bytes | mmap.mmap


def indexed_end(data: Text, size: int, base: int = 0) -> int:
    """Bytes up to and including the last newline: what may be indexed today.

    ``data`` holds the file's bytes from offset ``base`` on; ``size`` is the file's size.
    """
    if size <= base:
        return base
    if data[size - base - 1 : size - base] == b"\n":
        return size
    return base + data.rfind(b"\n", 0, size - base) + 1


def _events(data: Text, start: int, limit: int, base: int = 0) -> Iterator[tuple[int, int]]:
    """(offset, kind) of block-starting lines in ``[start, limit)``; kind is S, F or E.

    One regex pass (the engine scans for the literal ``\\n#`` in C, several GB/s),
    yielded one at a time so that a file of millions of ``#S`` lines holds no list.
    """
    starts: Iterable[int] = (m.start() + 1 for m in _EVENT.finditer(data, max(start - 1 - base, 0), limit - base))  # type: ignore[call-overload]
    if start == base and data[0:1] == b"#" and data[1:2] in (b"S", b"F", b"E"):
        starts = itertools.chain([0], starts)  # a block right at the start (its newline is not in ``data``)
    for rel in starts:
        kind = data[rel + 1]
        follow = data[rel + 2 : rel + 3]
        if kind == 0x45 and follow not in (b"", b" ", b"\t", b"\r", b"\n") and not follow.isdigit():
            continue
        yield (rel + base, kind)


def _scan_number(data: Text, offset: int) -> int:
    m = _SCAN_NUMBER.match(data, offset, offset + 64)  # type: ignore[call-overload]
    return int(m.group(1)) if m else 0


def _walk(index: SpecIndex, data: Text, start: int, limit: int, counts: dict[int, int], base: int = 0) -> None:
    """Append the blocks found in ``[start, limit)`` to ``index`` (``data`` starts at ``base``)."""
    events = _events(data, start, limit, base)
    blocks = index.blocks
    pending: list[tuple[int, int]] = []
    if start == 0 and not blocks:
        pending = list(itertools.islice(events, 1))
        first = pending[0][0] if pending else limit
        if first > 0 and (data[:1] == b"#" or data.find(b"\n#", 0, first) >= 0):  # header lines before any #F or #S (silx too)
            blocks.append(Block("header", 0))
    header = max((i for i, b in enumerate(blocks) if b.kind == "header"), default=-1)
    nscans = sum(1 for b in blocks if b.kind == "scan")
    for pos, kind in itertools.chain(pending, events):
        if kind == 0x53 and nscans >= MAX_SCANS:  # bounded: the rest of the file is not indexed
            index.dropped = True
            limit = pos
            break
        if kind == 0x53:  # S
            nscans += 1
            number = _scan_number(data, pos - base)
            counts[number] = counts.get(number, 0) + 1
            blocks.append(Block("scan", pos, number, counts[number], header))
        elif kind == 0x46 or not blocks or blocks[-1].kind != "header":  # F, or E opening a header
            header = len(blocks)
            blocks.append(Block("header", pos))
    index.end = limit


def build_index(data: Text, size: int | None = None) -> SpecIndex:
    """Index the first ``size`` bytes of a SPEC file's content (complete lines only)."""
    size = len(data) if size is None else size
    index = SpecIndex()
    limit = indexed_end(data, size)
    if limit:
        _walk(index, data, 0, limit, {})
    return index


def restart_offset(index: SpecIndex) -> int:
    """Where :func:`extend_index` starts reading again: the start of the last block."""
    return index.blocks[-1].offset if index.blocks else 0


def extend_index(index: SpecIndex, data: Text, size: int, base: int = 0) -> SpecIndex:
    """A new index for content that only grew: re-walk from the start of the last block.

    ``data`` holds the file from offset ``base`` (at most :func:`restart_offset`) on.
    """
    restart = restart_offset(index)
    if restart == 0:
        if base:
            raise ValueError("the whole file is needed")
        return build_index(data, size)
    limit = indexed_end(data, size, base)
    blocks = index.blocks[:-1]
    counts: dict[int, int] = {}
    for b in blocks:
        if b.kind == "scan":
            counts[b.number] = max(counts.get(b.number, 0), b.order)
    new = SpecIndex(list(blocks), restart)
    _walk(new, data, restart, limit, counts, base)
    return new


# -- one scan ------------------------------------------------------------------------
