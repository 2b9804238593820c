"""Array sources over in-memory data for unit tests: chunked (through a real cache) and
raw (pread from a real file), so renderings are tested over both read paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vfs.arrays import ChunkedSource
from vfs.rawarrays import RawSource
from vfs.cache import ChunkCache
from vfs.selection import Index, chunk_slices


class ArrayChunks(ChunkedSource):
    """A numpy array served chunk by chunk, recording which chunks were loaded."""

    def __init__(self, array: np.ndarray, chunks: Index, cache: ChunkCache | None = None) -> None:
        super().__init__(array.shape, array.dtype, chunks, "test", id(array), cache or ChunkCache(1 << 26))
        self.array = array
        self.loaded: list[Index] = []

    def load_chunk(self, index: Index) -> np.ndarray:
        self.loaded.append(index)
        return self.array[chunk_slices(index, self.chunks, self.shape)].copy()


def raw_file_source(array: np.ndarray, path: Path, chunks: Index | None = None) -> RawSource:
    """Write ``array`` to ``path`` (C order, or as full stored chunks) and serve it raw."""
    if chunks is None or chunks == array.shape:
        path.write_bytes(b"PAD!" * 16 + array.tobytes())
        return RawSource(str(path), array.shape, array.dtype, array.shape, "raw", lambda idx: 64)
    grid = [-(-s // c) for s, c in zip(array.shape, chunks)]
    offsets = {}
    with open(path, "wb") as fh:
        for index in np.ndindex(*grid):
            block = np.zeros(chunks, array.dtype)
            part = array[chunk_slices(index, chunks, array.shape)]
            block[tuple(slice(0, n) for n in part.shape)] = part
            if sum(index) % 3 == 2:  # leave some chunks unwritten: they read as fill
                if not part.tobytes().strip(b"\0"):
                    continue
            offsets[index] = fh.tell()
            fh.write(block.tobytes())
    return RawSource(str(path), array.shape, array.dtype, chunks, "raw", offsets.get, 0)
