"""What a SPEC scan's files read from: guarded reads of the source file, a column of the
data table, one analyser's MCA spectra, and ``scan.spec`` (the scan's own bytes).

Every read of the source goes through :class:`SourceView`, which refuses (EIO) bytes
of a file that was replaced or truncated since it was indexed.
"""

from __future__ import annotations

import os

import numpy as np

from vfs.arrays import ArraySource, ChunkedSource, placed
from vfs.context import Context
from vfs.errors import Unreadable
from vfs.formats import specparse as sp
from vfs.identity import SourceIdentity, checked_pread
from vfs.nodes import File


class SourceView:
    """Guarded reads of one version of the source file.

    A read checks the file against the identity it was indexed at, as every raw read
    does (:mod:`vfs.identity`): a SPEC file may only grow on the same inode, so a
    truncated or replaced file gives EIO, not other bytes; ``check`` compares a small
    sample of bytes recorded at index time.
    """

    def __init__(self, path: str, st: os.stat_result) -> None:
        self.path = path
        self.identity = SourceIdentity.of(st, growing=True)
        self.dev, self.inode = st.st_dev, st.st_ino

    def read(self, offset: int, length: int, check: bytes | None = None) -> bytes:
        data = checked_pread(self.path, self.identity, length, offset, self.path)
        if len(data) != length or (check is not None and not data.startswith(check)):
            raise Unreadable(f"{self.path}: changed since it was indexed")
        return data


class McaSource(ChunkedSource):
    """One analyser's spectra, shape (points, channels); each row is parsed on demand.

    A chunk is one spectrum; decoded spectra live in the shared chunk cache.
    """

    def __init__(self, view: SourceView, ranges: list[tuple[int, int]], nch: int, label: str,
                 key: tuple[object, ...], ctx: Context) -> None:
        super().__init__((len(ranges), nch), np.dtype(np.float64), (1, nch), label, key, ctx.cache,
                         {"interpretation": "spectrum"})
        self.view = view
        self.ranges = ranges

    def load_chunk(self, index: tuple[int, ...]) -> np.ndarray:
        start, end = self.ranges[index[0]]
        values = sp.parse_spectrum(self.view.read(start, end - start, b"@"))
        row = np.full((1, self.shape[1]), np.nan)
        n = min(values.size, self.shape[1])
        row[0, :n] = values[:n]
        return row


class ColumnSource(ArraySource):
    """One column of a scan, converted from text the first time it is read."""

    short_text = True  # its .txt is always in the short layout, whatever its length

    def __init__(self, table: sp.Table, j: int, label: str) -> None:
        n = table.npoints if table.ncols else 0
        super().__init__((n,), np.dtype(np.float64), (max(n, 1),), label)
        self.table = table
        self.j = j

    def values(self) -> np.ndarray:
        return self.table.column(self.j) if self.table.ncols else np.empty(0, np.float64)

    def fill_box(self, start: tuple[int, ...], extent: tuple[int, ...], out: np.ndarray) -> None:
        out[...] = self.values()[start[0] : start[0] + extent[0]]

    def read_flat(self, a: int, b: int, out: np.ndarray | None = None) -> np.ndarray:
        return placed(self.values()[max(a, 0) : b], out)


class ScanSpecFile(File):
    """``scan.spec``: the scan's file header and the scan itself, as one SPEC file.

    Its bytes are the source's own (read on demand, checked like every read); a ``#F``
    line is put first when the header has none, so every SPEC reader accepts it.
    """

    def __init__(self, ino: int, mtime_ns: int, view: SourceView, prefix: bytes,
                 parts: list[tuple[int, int, bytes]]) -> None:
        super().__init__(ino, mtime_ns)
        self.view = view
        self.prefix = prefix
        self.parts = parts

    @property
    def size(self) -> int:
        return len(self.prefix) + sum(length for _, length, _ in self.parts)

    def read(self, offset: int, size: int) -> bytes:
        out = []
        pos = 0
        for start, length, check in [(-1, len(self.prefix), b""), *self.parts]:
            lo, hi = max(offset, pos), min(offset + size, pos + length)
            if lo < hi:
                if start < 0:
                    out.append(self.prefix[lo - pos : hi - pos])
                else:
                    piece = self.view.read(start, length, check) if lo - pos < len(check) else None
                    out.append(piece[lo - pos : hi - pos] if piece is not None
                               else self.view.read(start + lo - pos, hi - lo))
            pos += length
        return b"".join(out)
