"""Index arithmetic: boxes cover exactly the flat range; chunk lists are exact."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vfs.selection import auto_chunks, chunks_of_box, flat_boxes, grow_chunks

shapes = st.lists(st.integers(1, 7), min_size=0, max_size=4).map(tuple)


@given(shapes, st.data())
@settings(max_examples=300, deadline=None)
def test_flat_boxes_cover_range_in_order(shape, data):
    n = math.prod(shape)
    a = data.draw(st.integers(0, n))
    b = data.draw(st.integers(a, n))
    flat = np.arange(n).reshape(shape)
    got = [flat[tuple(slice(s, s + e) for s, e in zip(start, ext))].reshape(-1)
           for start, ext in flat_boxes(shape, a, b)]
    joined = np.concatenate(got) if got else np.empty(0, int)
    assert joined.tolist() == list(range(a, b))
    assert len(got) <= max(2 * len(shape) - 1, 1)


@given(shapes, st.data())
@settings(max_examples=200, deadline=None)
def test_chunks_of_box_are_exactly_the_overlapping_chunks(shape, data):
    chunks = tuple(data.draw(st.integers(1, 4)) for _ in shape)
    start = tuple(data.draw(st.integers(0, s - 1)) for s in shape)
    ext = tuple(data.draw(st.integers(1, s - st_)) for s, st_ in zip(shape, start))
    got = set(chunks_of_box(start, ext, chunks))
    mask = np.zeros(shape, bool)
    mask[tuple(slice(s, s + e) for s, e in zip(start, ext))] = True
    expected = {tuple(i // c for i, c in zip(idx, chunks)) for idx in zip(*np.nonzero(mask))} if shape else {()}
    assert got == expected


@given(st.lists(st.integers(1, 5000), min_size=1, max_size=4), st.sampled_from([1, 2, 4, 8]))
def test_auto_and_grown_chunks_fit_the_target(shape, itemsize):
    shape = tuple(shape)
    chunks = auto_chunks(shape, itemsize, 4096)
    assert all(1 <= c <= max(s, 1) for c, s in zip(chunks, shape))
    assert math.prod(chunks) * itemsize <= max(4096, itemsize)
    base = tuple(1 for _ in shape)
    grown = grow_chunks(base, shape, itemsize, 4096)
    assert all(g % b == 0 for g, b in zip(grown, base))
    assert math.prod(grown) * itemsize <= 4096 * 2 or grown == shape
