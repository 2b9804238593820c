"""A chunked dataset's chunk offset table, compact and of a known size in bytes.

Reads outside HDF5 (``pread`` of raw or filtered chunks) need, for each chunk, where it
is stored: its file offset, stored size and filter mask. A dict of tuples costs about
250 bytes a chunk; here the table is three NumPy arrays over the whole chunk grid
(``limits.CHUNK_TABLE_ENTRY`` = 20 bytes a chunk, written or not), so its ``nbytes`` is
exact and a byte-budgeted cache can hold it (:class:`vfs.cache.ChunkCache`), drop it and
have it read again. A lookup is arithmetic, no search. The grid is bounded by the
caller (``limits.MAX_CHUNK_INDEX``) before a table is made.
"""

from __future__ import annotations

import math

import numpy as np

from vfs.limits import CHUNK_TABLE_ENTRY, MAX_CHUNK_INDEX, check_count
from vfs.selection import Index

ChunkEntry = tuple[int, int, int]  # (file offset, stored size, filter mask)


def grid_of(shape: Index, chunks: Index) -> Index:
    """Chunks along each axis of a dataset of ``shape`` stored in ``chunks``."""
    return tuple(-(-int(n) // int(c)) for n, c in zip(shape, chunks))


def table_bytes(shape: Index, chunks: Index) -> int:
    """The size of the table of a dataset, before it is read."""
    return math.prod(grid_of(shape, chunks)) * CHUNK_TABLE_ENTRY


class ChunkTable:
    """Chunk grid index -> (offset, stored size, filter mask); unwritten chunks absent."""

    __slots__ = ("grid", "strides", "offsets", "sizes", "masks", "written", "__weakref__")

    def __init__(self, shape: Index, chunks: Index) -> None:
        self.grid = grid_of(shape, chunks)
        count = check_count("chunks in the grid", math.prod(self.grid), MAX_CHUNK_INDEX)
        self.strides = tuple(math.prod(self.grid[d + 1 :]) for d in range(len(self.grid)))
        self.offsets = np.full(count, -1, np.int64)  # -1: not written
        self.sizes = np.zeros(count, np.int64)
        self.masks = np.zeros(count, np.uint32)
        self.written = 0

    def _linear(self, index: Index) -> int | None:
        if len(index) != len(self.grid):
            return None
        linear = 0
        for i, n, s in zip(index, self.grid, self.strides):
            if not 0 <= i < n:
                return None
            linear += i * s
        return linear

    def put(self, index: Index, offset: int, size: int, mask: int) -> None:
        """Record a written chunk (one outside the grid, from a broken file, is ignored)."""
        linear = self._linear(index)
        if linear is None or offset < 0 or size < 0 or mask >= 1 << 32:
            return
        self.written += int(self.offsets[linear] < 0)
        self.offsets[linear], self.sizes[linear], self.masks[linear] = offset, size, mask

    def get(self, index: Index) -> ChunkEntry | None:
        linear = self._linear(index)
        if linear is None:
            return None
        offset: int = self.offsets.item(linear)  # .item: a Python int, no NumPy scalar
        if offset < 0:
            return None
        return offset, self.sizes.item(linear), self.masks.item(linear)

    def values(self) -> list[ChunkEntry]:
        """The entries of the written chunks, in grid order."""
        where = np.flatnonzero(self.offsets >= 0)
        return list(zip(self.offsets[where].tolist(), self.sizes[where].tolist(), self.masks[where].tolist()))

    def __len__(self) -> int:
        return self.written

    @property
    def nbytes(self) -> int:
        return int(self.offsets.nbytes + self.sizes.nbytes + self.masks.nbytes)
