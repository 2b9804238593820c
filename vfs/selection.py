"""Index arithmetic: a range of elements in C order -> boxes -> the chunks they touch.

A byte range of a rendering maps to a flat element range ``[a, b)``. That range is the
union of at most ``2*ndim - 1`` rectangular boxes; each box overlaps a known set of
chunks. Only those chunks are read. Nothing here reads data.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

Index = tuple[int, ...]


def strides_of(shape: Index) -> Index:
    """Element strides of a C-ordered array of this shape."""
    out = [1] * len(shape)
    for axis in range(len(shape) - 2, -1, -1):
        out[axis] = out[axis + 1] * shape[axis + 1]
    return tuple(out)


def flat_boxes(shape: Index, a: int, b: int) -> Iterator[tuple[Index, Index]]:
    """Yield ``(start, extent)`` boxes that cover elements ``[a, b)`` in C order."""
    if a >= b:
        return
    if not shape:
        yield (), ()
        return
    row = math.prod(shape[1:])
    first, last = a // row, (b - 1) // row
    if first == last:
        for start, extent in flat_boxes(shape[1:], a - first * row, b - first * row):
            yield (first, *start), (1, *extent)
        return
    if a % row:
        for start, extent in flat_boxes(shape[1:], a % row, row):
            yield (first, *start), (1, *extent)
        first += 1
    full_end = b // row
    if full_end > first:
        yield (first, *([0] * (len(shape) - 1))), (full_end - first, *shape[1:])
    if b % row:
        for start, extent in flat_boxes(shape[1:], 0, b % row):
            yield (full_end, *start), (1, *extent)


def chunks_of_box(start: Index, extent: Index, chunks: Index) -> Iterator[Index]:
    """Chunk grid indices of every chunk that overlaps the box."""
    ranges = [
        range(s // c, (s + e - 1) // c + 1) for s, e, c in zip(start, extent, chunks)
    ]
    return itertools.product(*ranges)


def chunk_slices(index: Index, chunks: Index, shape: Index) -> tuple[slice, ...]:
    """Slices of the array that chunk ``index`` covers (clipped at the array's edge)."""
    return tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(index, chunks, shape))


def overlap(
    start: Index, extent: Index, index: Index, chunks: Index, shape: Index
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """For box and chunk, the slices (inside the box, inside the chunk) they share."""
    in_box: list[slice] = []
    in_chunk: list[slice] = []
    for s, e, i, c, n in zip(start, extent, index, chunks, shape):
        c0 = i * c
        lo, hi = max(s, c0), min(s + e, c0 + c, n)
        in_box.append(slice(lo - s, hi - s))
        in_chunk.append(slice(lo - c0, hi - c0))
    return tuple(in_box), tuple(in_chunk)


def auto_chunks(shape: Index, itemsize: int, target: int = 1 << 20) -> Index:
    """A chunk shape of about ``target`` bytes for data that has none (contiguous, VDS).

    Trailing axes are kept whole while they fit, so a chunk is one contiguous run.
    """
    if not shape:
        return ()
    out = [1] * len(shape)
    budget = max(target // max(itemsize, 1), 1)
    for axis in range(len(shape) - 1, -1, -1):
        n = max(shape[axis], 1)
        if n <= budget:
            out[axis] = n
            budget //= n
        else:
            out[axis] = max(budget, 1)
            break
    return tuple(out)


def grow_chunks(chunks: Index, shape: Index, itemsize: int, target: int = 1 << 20) -> Index:
    """Whole multiples of ``chunks`` of about ``target`` bytes, trailing axes first.

    Datasets stored in tiny chunks are read and cached in blocks of several chunks, so
    that one read does not make thousands of calls; block edges stay on chunk edges.
    """
    out = list(chunks)
    for axis in range(len(chunks) - 1, -1, -1):
        size = math.prod(out) * itemsize
        if size >= target:
            break
        room = max(target // max(size, 1), 1)
        whole = -(-max(shape[axis], 1) // out[axis])
        out[axis] *= max(min(room, whole), 1)
    return tuple(out)
