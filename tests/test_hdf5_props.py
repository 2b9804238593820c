"""Property tests of the HDF5 read paths without a kernel: random dtype, shape, chunk
shape, filter and byte range; h5py and numpy.save are the oracles."""

from __future__ import annotations

import io
import itertools
import os
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vfs.rawarrays import RawSource
from vfs.cache import ChunkCache
from vfs.formats import h5arrays
from vfs.context import Context
from vfs.lazyarrays import LazySource
from vfs.formats.registry import BACKENDS

DTYPES = ["<i1", "<u2", ">i4", "<i8", "<f4", ">f8", "<f2", "?", "<c8",
          np.dtype([("a", "<i2"), ("b", ">f8")]), "S5"]
FILTERS = {
    "none": {},
    "gzip": {"compression": "gzip", "shuffle": True},
    "lzf": {"compression": "lzf"},
    "bitshuffle": dict(hdf5plugin.Bitshuffle(nelems=0, cname="lz4")),
    "zstd": dict(hdf5plugin.Zstd()),
}
HDF5 = next(b for b in BACKENDS if b.name == "hdf5")
counter = itertools.count()


@st.composite
def datasets(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=1, max_size=3)))
    data = draw(hnp.arrays(dtype, shape))
    layout = draw(st.sampled_from(["contiguous", "chunked"] + list(FILTERS)[1:]))
    chunks = tuple(draw(st.integers(1, n + 2)) for n in shape) if layout != "contiguous" else None
    return data, layout, chunks


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@given(datasets(), st.data())
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_dataset_any_range_equals_h5py(tmp_path: Path, case, data):
    array, layout, chunks = case
    path = tmp_path / f"p{next(counter)}.h5"
    kwargs = {} if layout in ("contiguous", "chunked") else FILTERS[layout]
    if array.dtype.kind in "bSc" or array.dtype.names:
        kwargs = {k: v for k, v in kwargs.items() if k in ("compression", "shuffle")}  # plugin filters want numbers
    with h5py.File(path, "w") as f:
        maxshape = (None,) * array.ndim if chunks else None  # lets chunks overhang the data
        f.create_dataset("d", data=array, chunks=chunks, maxshape=maxshape, **kwargs)
    with h5py.File(path, "r") as f:
        expected_array = f["d"][()]
    ctx = Context(root=str(tmp_path), cache=ChunkCache(1 << 24))
    # small test chunks would all take the decoded path: half the time, force pread
    force_raw = data.draw(st.booleans())
    old = h5arrays.RAW_MIN_CHUNK, h5arrays.TINY_CHUNK
    if force_raw:
        h5arrays.RAW_MIN_CHUNK, h5arrays.TINY_CHUNK = 0, 0
    try:
        folder = HDF5.open_folder(str(path), os.stat(path), ctx, 3)
        node = folder.child("d.npy")
        listed = node.rendering.source
        assert isinstance(listed, LazySource)
        built = listed.source  # built on first use (here, while the raw path is forced)
        if force_raw and layout in ("contiguous", "chunked") and array.dtype.kind in "iuf":
            assert isinstance(built, RawSource)
    finally:
        h5arrays.RAW_MIN_CHUNK, h5arrays.TINY_CHUNK = old
    if array.dtype.names:
        clean = np.zeros(expected_array.shape, expected_array.dtype)
        clean[...] = expected_array
        expected_array = clean
    expected = npy_bytes(expected_array)
    assert node.size == len(expected)
    whole = node.read(0, node.size)
    back = np.load(io.BytesIO(whole))
    if array.dtype.names:
        for name in array.dtype.names:
            assert back[name].tobytes() == expected_array[name].tobytes()
    else:
        assert whole == expected
    o = data.draw(st.integers(0, len(expected)))
    n = data.draw(st.integers(0, len(expected) - o + 8))
    assert node.read(o, n) == whole[o : o + n]
    if "d.txt" in folder.children():
        txt = folder.child("d.txt")
        full = txt.read(0, txt.size)
        assert len(full) == txt.size
        o = data.draw(st.integers(0, txt.size))
        assert txt.read(o, 33) == full[o : o + 33]
