"""Renderings over both read paths (decoded chunks, raw pread): any dtype, shape, chunk
shape and byte range. The oracles are numpy.save, float parsing and fabio."""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import fabio
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.arraysupport import ArrayChunks, raw_file_source
from vfs.arrays import MemorySource
from vfs.render.edf import EdfRendering
from vfs.render.npy import NpyRendering, npy_header
from vfs.render.txt import TxtRendering

SIMPLE = ["<i1", "<u1", "<i2", ">i2", "<u2", "<i4", ">u4", "<i8", ">i8", "<u8", "<f2", "<f4", ">f4",
          "<f8", ">f8", "?", "<c8", ">c16", "|S7", "<U3"]
STRUCTS = [
    np.dtype({"names": ["a", "b"], "formats": ["<i2", "<f8"], "offsets": [0, 8], "itemsize": 24}),
    np.dtype([("x", "<f4"), ("inner", [("p", ">i4"), ("q", "S3")]), ("v", "<f8", (3,))]),
    np.dtype([("r", "<f8"), ("i", "<f8")]),
]
DTYPES = [np.dtype(d) for d in SIMPLE] + STRUCTS


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-equal values; padding bytes of structured types do not count."""
    if a.dtype.names:
        return a.dtype == b.dtype and all(same(a[n], b[n]) for n in a.dtype.names)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


@st.composite
def arrays_and_chunks(draw, dtypes=DTYPES, max_dims=4):
    dtype = draw(st.sampled_from(dtypes))
    shape = tuple(draw(st.lists(st.integers(0 if draw(st.booleans()) else 1, 6), min_size=0, max_size=max_dims)))
    array = draw(hnp.arrays(dtype, shape))
    chunks = tuple(draw(st.integers(1, max(s, 1) + 1)) for s in shape)
    return array, chunks


def sources(array, chunks, tmp_path):
    yield ArrayChunks(array, chunks)
    yield MemorySource(array, "mem")
    if array.dtype.kind in "biuf" and not array.dtype.names:
        yield raw_file_source(array, tmp_path / "raw_contig.bin")
        if array.ndim:
            yield raw_file_source(array, tmp_path / "raw_chunked.bin", chunks)


@given(arrays_and_chunks(), st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_npy_equals_numpy_save_at_any_range(tmp_path: Path, case, data):
    array, chunks = case
    if array.dtype.names:  # padding bytes: zero them, as the mount serves them
        clean = np.zeros(array.shape, array.dtype)
        clean[...] = array
        array = clean
    expected = npy_bytes(array)
    for source in sources(array, chunks, tmp_path):
        r = NpyRendering(source)
        assert r.size == len(expected)
        whole = r.read(0, r.size)
        o = data.draw(st.integers(0, len(expected)))
        n = data.draw(st.integers(0, len(expected) - o + 10))
        assert r.read(o, n) == whole[o : o + n]
        back = np.load(io.BytesIO(whole))
        assert same(back, array)
        if not array.dtype.names:
            assert whole == expected


def test_npy_header_versions_match_numpy():
    big = np.dtype([(f"field_{i}", "<f8") for i in range(3000)])
    latin = np.dtype([("énergie", "<f8")])
    utf = np.dtype([("θ", "<f8"), ("能量", ">i4")])
    cases = [(np.dtype("<f4"), (3, 4), 1), (big, (2,), 2), (latin, (1,), 1), (utf, (2, 3), 3), (np.dtype("<i2"), (), 1),
             (np.dtype(">u2"), (0, 5), 1)]
    for dtype, shape, version in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # numpy warns when it writes 2.0 or 3.0
            expected = npy_bytes(np.zeros(shape, dtype))
        head = npy_header(shape, dtype)
        assert head[6] == version and expected[6] == version
        assert expected.startswith(head) and len(expected) == len(head) + math.prod(shape) * dtype.itemsize


def parse_txt(text: bytes, dtype: np.dtype) -> np.ndarray:
    fields = text.split()
    if dtype.kind == "c":
        parts = np.array([float(f) for f in fields])
        out = np.empty(len(parts) // 2, dtype)
        out.real, out.imag = parts[0::2], parts[1::2]
        return out
    if dtype.kind == "f":
        return np.array([float(f) for f in fields]).astype(dtype)
    if dtype.kind == "b":
        return np.array([int(f) for f in fields]).astype(bool)
    return np.array([int(f) for f in fields], dtype=dtype)


NUMERIC = [d for d in DTYPES if d.kind in "biufc" and not d.names]


@given(arrays_and_chunks(dtypes=NUMERIC), st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_txt_round_trips_exactly_and_slices(tmp_path: Path, case, data):
    array, chunks = case
    for source in sources(array, chunks, tmp_path):
        r = TxtRendering(source)
        full = r.read(0, r.size + 5)
        assert len(full) == r.size
        back = parse_txt(full, array.dtype)
        np.testing.assert_array_equal(back, array.reshape(-1))
        o = data.draw(st.integers(0, r.size))
        n = data.draw(st.integers(0, r.size - o + 3))
        assert r.read(o, n) == full[o : o + n]
        if array.ndim >= 2 and array.size:
            assert full.count(b"\n") == array.size // array.shape[-1]
        elif array.size:
            assert full.count(b"\n") == array.size


@given(arrays_and_chunks(dtypes=[d for d in DTYPES if d.names or d.kind in "SU"]), st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_txt_of_compound_and_strings_is_fixed_width(tmp_path: Path, case, data):
    array, chunks = case
    r = TxtRendering(ArrayChunks(array, chunks))
    full = r.read(0, r.size)
    assert len(full) == r.size == array.size * (r.width + 1)
    o = data.draw(st.integers(0, r.size))
    assert r.read(o, 17) == full[o : o + 17]


@pytest.mark.parametrize("dtype", ["<u1", "<i2", ">u2", "<i4", ">f4", "<f8", "<u4", "<i8", "?"])
@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 6), (2, 1, 3, 5)])
def test_edf_is_read_back_by_fabio(tmp_path: Path, dtype, shape):
    rng = np.random.default_rng(7)
    array = (rng.random(shape) * 100).astype(dtype)
    attrs = {"units": "counts", "Size": "not-this", "long name": "a = b; c"}
    source = ArrayChunks(array, tuple(max(1, s // 2) for s in shape))
    source.attrs = attrs
    r = EdfRendering(source)
    path = tmp_path / "x.edf"
    path.write_bytes(r.read(0, r.size))
    assert r.read(100, 1000) == path.read_bytes()[100:1100]
    img = fabio.open(str(path))
    frames = array.reshape(-1, *shape[-2:])
    assert img.nframes == len(frames)
    for k, frame in enumerate(frames):
        got = img.getframe(k) if img.nframes > 1 else img
        np.testing.assert_array_equal(got.data, frame.astype(got.data.dtype))
        assert got.header["units"] == "counts"
        assert got.header["h5_Size"] == "not-this"
    assert (r.header_size % 512) == 0
