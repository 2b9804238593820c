"""Chunks decoded outside HDF5 (vfs/decode.py, DecodedSource) against h5py.

Property tests draw a filter pipeline (gzip levels with and without shuffle and
fletcher32, LZF, bitshuffle with none/LZ4/Zstd, hdf5plugin's LZ4, Zstd, Blosc and Blosc2
with their compressors and shuffles), a dtype and byte order, a shape and a chunk shape
(edge chunks overhanging the data), write it with h5py and compare every byte the
virtual .npy serves with h5py's ``ds[...]``. Chunks written with a skipped filter
(``write_direct_chunk(filter_mask=...)``) and a corrupted checksum go through h5py.
The last tests read the same kinds of data through a real mount.
"""

from __future__ import annotations

import errno
import itertools
import os
import zlib
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vfs.rawarrays import RawSource
from vfs.cache import ChunkCache
from vfs.context import Context
from vfs.errors import Unreadable
from vfs.formats import h5arrays, h5pool
from vfs.formats.registry import BACKENDS

HDF5 = next(b for b in BACKENDS if b.name == "hdf5")
DTYPES = ["<u1", "<i2", ">i2", "<u4", ">f4", "<f4", "<f8", ">i8", "<u8"]
BLOSC_NAMES = ["blosclz", "lz4", "lz4hc", "zlib", "zstd"]
counter = itertools.count()


@st.composite
def pipelines(draw) -> tuple[str, dict]:
    kind = draw(st.sampled_from(["gzip", "lzf", "bitshuffle", "lz4", "zstd", "blosc", "blosc2"]))
    if kind == "gzip":
        level = draw(st.integers(0, 9))
        opts = {"compression": "gzip", "compression_opts": level, "shuffle": draw(st.booleans()),
                "fletcher32": draw(st.booleans())}
        return f"gzip{level}", opts
    if kind == "lzf":
        return "lzf", {"compression": "lzf", "shuffle": draw(st.booleans()), "fletcher32": draw(st.booleans())}
    if kind == "bitshuffle":
        cname = draw(st.sampled_from(["none", "lz4", "zstd"]))
        return f"bs-{cname}", dict(hdf5plugin.Bitshuffle(nelems=draw(st.sampled_from([0, 256])), cname=cname))
    if kind == "lz4":
        return "lz4", dict(hdf5plugin.LZ4(nbytes=draw(st.sampled_from([0, 4096]))))
    if kind == "zstd":
        return "zstd", dict(hdf5plugin.Zstd(clevel=draw(st.integers(1, 9))))
    cname = draw(st.sampled_from(BLOSC_NAMES))
    if kind == "blosc":
        shuffle = draw(st.sampled_from([0, 1, 2]))
        return f"blosc-{cname}-{shuffle}", dict(hdf5plugin.Blosc(cname=cname, clevel=5, shuffle=shuffle))
    filters = draw(st.sampled_from([0, 1, 2]))
    return f"blosc2-{cname}-{filters}", dict(hdf5plugin.Blosc2(cname=cname, clevel=5, filters=filters))


@st.composite
def cases(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = tuple(draw(st.lists(st.integers(1, 24), min_size=1, max_size=3)))
    chunks = tuple(draw(st.integers(1, n + 3)) for n in shape)
    # counts with peaks (compressible) or raw random bytes (incompressible: optional
    # filters such as LZF then store the chunk unfiltered, with a filter mask)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        values = rng.poisson(rng.uniform(0.5, 50), shape).astype(dtype)
    else:
        values = np.frombuffer(rng.bytes(int(np.prod(shape)) * dtype.itemsize), dtype).reshape(shape)
    name, opts = draw(pipelines())
    return values, chunks, name, opts


def open_source(path: Path, name: str = "d"):
    ctx = Context(root=str(path.parent), cache=ChunkCache(1 << 24))
    old = h5arrays.TINY_CHUNK
    h5arrays.TINY_CHUNK = 0  # test chunks are small: take the decoded path anyway
    try:
        folder = HDF5.open_folder(str(path), os.stat(path), ctx, 3)
        listed = folder.child(f"{name}.npy").rendering.source
        return listed.source  # the source a listed dataset builds on first use (here, while forced)
    finally:
        h5arrays.TINY_CHUNK = old


@given(cases(), st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_decoded_chunks_equal_h5py(tmp_path: Path, case, data):
    values, chunks, name, opts = case
    path = tmp_path / f"d{next(counter)}.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=values, chunks=chunks, maxshape=(None,) * values.ndim, **opts)
    with h5py.File(path, "r") as f:
        expected = f["d"][...]
        masked = any(f["d"].id.get_chunk_info(i).filter_mask for i in range(f["d"].id.get_num_chunks()))
    source = open_source(path)
    assert isinstance(source, h5arrays.DecodedSource), name
    assert source.dtype == expected.dtype  # byte order kept
    raw = expected.tobytes()
    assert source.read_bytes(0, len(raw)) == raw, name
    p = data.draw(st.integers(0, len(raw)))
    q = data.draw(st.integers(p, len(raw)))
    assert source.read_bytes(p, q) == raw[p:q]
    if not masked:  # every chunk was decoded here, none by h5py
        assert source.fallbacks == 0, name


def test_chunk_with_skipped_filter_goes_through_h5py(tmp_path: Path):
    values = np.arange(40 * 30, dtype="<i4").reshape(40, 30)
    path = tmp_path / "mask.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("d", data=values, chunks=(10, 30), compression="gzip", shuffle=True)
        # chunk (1, 0) deflated but not shuffled: filter 0 (shuffle) skipped, so a decoder
        # that ignored the mask would inflate it fine and then scramble it
        piece = np.ascontiguousarray(values[10:20] * -3)
        ds.id.write_direct_chunk((10, 0), zlib.compress(piece.tobytes()), filter_mask=0b01)
    with h5py.File(path, "r") as f:
        expected = f["d"][...]
    assert np.array_equal(expected[10:20], values[10:20] * -3)  # h5py honours the mask
    source = open_source(path)
    assert isinstance(source, h5arrays.DecodedSource)
    assert np.array_equal(source.read_all(), expected)
    assert source.fallbacks == 1


def test_bad_checksum_is_an_error_as_in_h5py(tmp_path: Path):
    values = np.arange(4096, dtype="<f4").reshape(64, 64)
    path = tmp_path / "crc.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("d", data=values, chunks=(32, 64), fletcher32=True)
        offset = ds.id.get_chunk_info(1).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 100)
        byte = fh.read(1)
        fh.seek(offset + 100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with h5py.File(path, "r") as f:
        with pytest.raises(OSError):
            f["d"][32:]
        assert np.array_equal(f["d"][:32], values[:32])
    source = open_source(path)
    assert isinstance(source, h5arrays.DecodedSource)
    assert np.array_equal(source.read_flat(0, 32 * 64).reshape(32, 64), values[:32])
    with pytest.raises(Unreadable):
        source.read_flat(32 * 64, 64 * 64)


def test_unwritten_chunks_read_as_fill_value(tmp_path: Path):
    path = tmp_path / "fill.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("d", shape=(100, 50), dtype=">i2", chunks=(30, 20), compression="gzip", fillvalue=-7)
        ds[0:30, 0:20] = 5
    with h5py.File(path, "r") as f:
        expected = f["d"][...]
    source = open_source(path)
    assert isinstance(source, h5arrays.DecodedSource)
    assert source.read_all().tobytes() == expected.tobytes()
    assert (expected == -7).sum() == 100 * 50 - 600


def test_oversized_stored_chunk_is_not_read_here(tmp_path: Path):
    values = np.arange(64 * 256, dtype="<i4").reshape(64, 256)
    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("d", data=values, chunks=(16, 256), compression="gzip")
        # a valid deflate stream followed by 2 MiB of junk: HDF5 stops at the stream's end
        stored = zlib.compress((values[16:32] + 7).tobytes()) + bytes(2 << 20)
        ds.id.write_direct_chunk((16, 0), stored)
    with h5py.File(path, "r") as f:
        expected = f["d"][...]
    assert np.array_equal(expected[16:32], values[16:32] + 7)
    source = open_source(path)
    assert isinstance(source, h5arrays.DecodedSource)
    assert source.read_all().tobytes() == expected.tobytes()
    assert source.fallbacks == 1  # stored 2 MiB larger than decoded: read through h5py


@pytest.mark.parametrize("chunks", [(8, 16, 128), (7, 13, 100), (37, 45, 300)])
def test_blosc2_arrays_padded_to_blocks_are_decoded_here(tmp_path: Path, chunks):
    cube = np.random.default_rng(5).poisson(np.linspace(1, 40, 300), (37, 45, 300)).astype(">f4")
    path = tmp_path / "b2.h5"
    with h5py.File(path, "w") as f:  # b2nd frames store whole blocks: larger than the chunk
        f.create_dataset("d", data=cube, chunks=chunks, **hdf5plugin.Blosc2(cname="zstd", filters=2))
    with h5py.File(path, "r") as f:
        expected = f["d"][...]
    source = open_source(path)
    assert source.read_all().tobytes() == expected.tobytes()
    assert source.fallbacks == 0


def test_decoded_read_of_a_file_changed_in_place_is_eio(tmp_path: Path):
    values = np.arange(64 * 1024, dtype="<f4").reshape(64, 1024)
    path = tmp_path / "changed.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=values, chunks=(16, 1024), compression="gzip")
    source = open_source(path)
    assert isinstance(source, h5arrays.DecodedSource)
    assert np.array_equal(source.read_flat(0, 1024), values[0])  # chunk index read, file as built
    with open(path, "ab") as fh:  # the file changes under the node: its layout is no longer known
        fh.write(b"appended")
    with pytest.raises(Unreadable):
        source.read_flat(32 * 1024, 33 * 1024)  # a chunk not decoded yet


def test_first_read_decodes_its_chunks_on_the_pool(tmp_path: Path, monkeypatch):
    import threading

    values = np.random.default_rng(3).poisson(20, (16, 64, 256)).astype("<f4")
    path = tmp_path / "par.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=values, chunks=(16, 16, 64), compression="gzip")  # 16 chunks of 64 KiB
    decoded_by: list[str] = []
    original = h5arrays.DecodedSource.load_chunk

    def recording(self, index):
        data = original(self, index)
        decoded_by.append(threading.current_thread().name)
        return data

    monkeypatch.setattr(h5arrays.DecodedSource, "load_chunk", recording)
    source = open_source(path)
    assert source.read_all().tobytes() == values.tobytes()  # one read, on a fresh source
    assert len(decoded_by) == 16
    assert any(name.startswith("vfs-decode") for name in decoded_by)  # not all on this thread


# --------------------------------------------------------------------------- real mount
MOUNT_FILTERS = {
    "gzip_shuffle_crc": {"compression": "gzip", "compression_opts": 4, "shuffle": True, "fletcher32": True},
    "lzf": {"compression": "lzf"},
    "bslz4": dict(hdf5plugin.Bitshuffle(nelems=0, cname="lz4")),
    "bszstd": dict(hdf5plugin.Bitshuffle(nelems=0, cname="zstd")),
    "lz4": dict(hdf5plugin.LZ4()),
    "zstd": dict(hdf5plugin.Zstd()),
    "blosc": dict(hdf5plugin.Blosc(cname="lz4", shuffle=hdf5plugin.Blosc.SHUFFLE)),
    "blosc2": dict(hdf5plugin.Blosc2(cname="zstd", filters=hdf5plugin.Blosc2.BITSHUFFLE)),
}


@pytest.fixture(scope="module")
def decoded_mount(tmp_path_factory):
    from tests.mounting import mounted

    src = tmp_path_factory.mktemp("dsrc")
    rng = np.random.default_rng(5)
    cube = rng.poisson(np.linspace(1, 40, 300), (37, 45, 300)).astype(">f4")  # edge chunks on every axis
    with h5py.File(src / "filters.h5", "w") as f:
        for name, opts in MOUNT_FILTERS.items():
            f.create_dataset(name, data=cube, chunks=(8, 16, 128), **opts)
        ds = f.create_dataset("masked", data=cube.astype("<u2"), chunks=(8, 16, 128), compression="gzip", shuffle=True)
        piece = (cube[8:16, 16:32, 128:256] + 1000).astype("<u2")
        ds.id.write_direct_chunk((8, 16, 128), piece.view(np.uint8).reshape(-1, 2).T.copy().tobytes(), filter_mask=0b10)
        spectra = rng.poisson(np.linspace(1, 40, 2048), (64, 32, 2048)).astype("<f4")
        f.create_dataset("spectra", data=spectra, chunks=(8, 8, 512), **hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))
    mnt = tmp_path_factory.mktemp("dmnt") / "m"
    with mounted(src, mnt, "--cache-size", "64M") as m:
        yield src / "filters.h5", m / "filters.h5"


@pytest.mark.mount
@pytest.mark.parametrize("name", [*MOUNT_FILTERS, "masked"])
def test_mount_serves_decoded_data_equal_to_h5py(decoded_mount, name):
    source, folder = decoded_mount
    with h5py.File(source, "r") as f:
        expected = f[name][...]
    mapped = np.load(folder / f"{name}.npy", mmap_mode="r")
    assert mapped.dtype == expected.dtype and mapped.shape == expected.shape
    assert mapped[36, 44, :].tobytes() == expected[36, 44, :].tobytes()  # the corner edge chunk, cold
    assert np.load(folder / f"{name}.npy").tobytes() == expected.tobytes()


@pytest.mark.mount
def test_mount_corrupt_chunk_is_eio(tmp_path: Path, mount):
    src = tmp_path / "src"
    src.mkdir()
    values = np.arange(64 * 1024, dtype="<f4").reshape(64, 1024)
    with h5py.File(src / "crc.h5", "w") as f:
        ds = f.create_dataset("d", data=values, chunks=(16, 1024), compression="gzip", fletcher32=True)
        offset = ds.id.get_chunk_info(2).byte_offset
    with open(src / "crc.h5", "r+b") as fh:
        fh.seek(offset + 50)
        byte = fh.read(1)
        fh.seek(offset + 50)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with mount(src) as mnt:
        npy = mnt / "crc.h5" / "d.npy"
        with open(npy, "rb") as fh:
            np.lib.format.read_array_header_1_0(fh) if np.lib.format.read_magic(fh) == (1, 0) else None
            header = fh.tell()
            assert header > 0
            fh.seek(header)
            assert len(fh.read(16 * 1024 * 4)) == 16 * 1024 * 4  # chunk 0 is fine
            fh.seek(header + 2 * 16 * 1024 * 4)
            with pytest.raises(OSError) as info:
                fh.read(4096)
        assert info.value.errno == errno.EIO


@pytest.mark.mount
def test_cold_spectrum_decodes_only_what_the_kernel_asked_for(decoded_mount):
    from tests.mounting import stats

    source, folder = decoded_mount
    npy = folder / "spectra.npy"
    mapped = np.load(npy, mmap_mode="r")
    with open(npy, "rb") as fh:
        np.lib.format.read_magic(fh)
        np.lib.format.read_array_header_1_0(fh)
        header = fh.tell()
    with h5py.File(source, "r") as f:
        ds = f["spectra"]
        expected, shape, chunks = ds[40, 20, :], ds.shape, ds.chunks
    assert mapped[40, 20, :].tobytes() == expected.tobytes()
    st = stats(folder.parent)
    asked = [(off, size) for path, off, size in st["recent_reads"] if path.endswith("/spectra.npy")]
    assert asked
    touched, pairs = set(), 0
    for off, size in asked:  # the chunks holding the elements of every byte range read
        first, last = max(off - header, 0) // 4, (off + size - header - 1) // 4
        last = min(last, int(np.prod(shape)) - 1)
        if last < first:
            continue
        elements = np.unravel_index(np.arange(first, last + 1), shape)
        grid = np.stack([e // c for e, c in zip(elements, chunks)], axis=1)
        mine = {tuple(row) for row in np.unique(grid, axis=0).tolist()}
        touched |= mine
        pairs += len(mine)
    # each chunk those bytes touch is decoded whole once, or (bitshuffle blocks) in part
    # for each read that needs at most a quarter of it; never a chunk nobody asked for
    loads = sum(v for k, v in st["chunk_loads"].items() if k.endswith(":/spectra"))
    parts = sum(v for k, v in st["part_loads"].items() if k.endswith(":/spectra"))
    assert loads <= len(touched) <= loads + parts <= pairs
    assert parts > 0
    assert len(touched) < 64 * 32 * 2048 * 4 // (8 * 8 * 512 * 4)  # not the whole cube
    chunk_bytes = 8 * 8 * 512 * 4
    assert st["part_bytes"] <= parts * chunk_bytes // 2  # parts are parts


@st.composite
def block_cases(draw):
    """Bitshuffle datasets whose chunks hold many blocks, and reads that need a few."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    cname = draw(st.sampled_from(["none", "lz4", "zstd"]))
    nelems = draw(st.sampled_from([0, 128, 256, 1000 // 8 * 8]))
    shape = (draw(st.integers(3, 9)), draw(st.integers(1, 5)), draw(st.integers(500, 5000)))
    chunks = (draw(st.integers(2, shape[0] + 2)), draw(st.integers(1, shape[1] + 1)), shape[2] + draw(st.integers(0, 40)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.poisson(rng.uniform(0.5, 50), shape).astype(dtype)
    size = values.size
    reads = draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 3000)), min_size=1, max_size=6))
    # bitshuffle's documented default block: 8 KiB of elements, a multiple of 8, >= 128
    block = nelems or max(8192 // dtype.itemsize // 8 * 8, 128)
    return values, chunks, dict(hdf5plugin.Bitshuffle(nelems=nelems, cname=cname)), reads, block


@given(block_cases())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_parts_of_bitshuffle_chunks_equal_h5py(tmp_path: Path, case):
    """Reads outside a stream decode only the blocks they need (``part_loads``), the same
    bytes as h5py's, for every block size, compressor, dtype, edge chunk and range."""
    values, chunks, opts, reads, block = case
    path = tmp_path / f"p{next(counter)}.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=values, chunks=chunks, maxshape=(None,) * 3, **opts)
    with h5py.File(path, "r") as f:
        expected = f["d"][...].reshape(-1)
    source = open_source(path)
    assert isinstance(source, h5arrays.DecodedSource) and source.partial
    for a, n in reads:
        got = source.read_flat(a, a + n)
        assert got.tobytes() == expected[a : a + n].tobytes()
    # one element of a chunk nobody has decoded: decoded in part where the chunk holds
    # many blocks, whole where it holds few (a part would be most of it)
    before = sum(source.cache.parts.values())
    last = values.size - 1
    source.cache.clear()
    assert source.read_flat(last, last + 1).tobytes() == expected[last:].tobytes()
    if np.prod(chunks) >= 8 * block:
        assert sum(source.cache.parts.values()) == before + 1
    elif np.prod(chunks) < 2 * block:
        assert sum(source.cache.parts.values()) == before
    assert source.fallbacks == 0


def test_a_part_is_decoded_once_for_all_the_boxes_of_a_read(tmp_path: Path):
    """A read across a row boundary is two boxes in one chunk: one part, one decode."""
    values = np.arange(4 * 4096, dtype="<f4").reshape(4, 4096)
    with h5py.File(tmp_path / "rows.h5", "w") as f:
        f.create_dataset("d", data=values, chunks=(4, 4096), **hdf5plugin.Bitshuffle(nelems=256, cname="lz4"))
    source = open_source(tmp_path / "rows.h5")
    assert source.read_flat(4000, 4200).tobytes() == values.reshape(-1)[4000:4200].tobytes()
    assert sum(source.cache.parts.values()) == 1
    assert sum(source.cache.loads.values()) == 1  # the chunk's block layout, not the chunk


def test_chunks_of_more_blocks_than_the_bound_are_decoded_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The block layout is walked in Python: past limits.MAX_PART_BLOCKS, whole chunks."""
    from vfs import decode

    values = np.arange(64 * 1024, dtype="<f4")
    with h5py.File(tmp_path / "blocks.h5", "w") as f:  # 512 blocks of 128 elements
        f.create_dataset("d", data=values, chunks=(64 * 1024,), **hdf5plugin.Bitshuffle(nelems=128, cname="lz4"))
    monkeypatch.setattr(decode, "MAX_PART_BLOCKS", 511)
    source = open_source(tmp_path / "blocks.h5")
    assert source.read_flat(1000, 1010).tobytes() == values[1000:1010].tobytes()
    assert sum(source.cache.parts.values()) == 0
    assert source.cache.loads[source.label] == 1 and source.fallbacks == 0
    monkeypatch.setattr(decode, "MAX_PART_BLOCKS", 512)
    source.cache.clear()
    assert source.read_flat(5000, 5010).tobytes() == values[5000:5010].tobytes()
    assert sum(source.cache.parts.values()) == 1


@pytest.mark.parametrize("compression", ["gzip", None])
def test_datasets_with_more_chunks_than_the_index_bound_are_read_through_h5py(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compression: str | None) -> None:
    """A chunk grid above ``limits.MAX_CHUNK_INDEX`` keeps no offset table in memory:
    h5py reads it (same values); at the bound the table is kept (decoded or raw reads)."""
    path = tmp_path / "grid.h5"
    with h5py.File(path, "w") as f:  # a grid of 12 x 3 = 36 chunks of 64 KiB
        f.create_dataset("d", data=np.arange(768 * 640, dtype="<f4").reshape(768, 640), chunks=(64, 256),
                         compression=compression)
    with h5py.File(path, "r") as f:
        expected = f["d"][...]
    monkeypatch.setattr(h5pool, "MAX_CHUNK_INDEX", 36)  # grid: 12 x 3 = 36 chunks
    kept = open_source(path)
    assert isinstance(kept, h5arrays.DecodedSource if compression else RawSource)
    monkeypatch.setattr(h5pool, "MAX_CHUNK_INDEX", 35)
    source = open_source(path)
    assert isinstance(source, h5arrays.H5ChunkedSource)
    assert source.read_all().tobytes() == expected.tobytes() == kept.read_all().tobytes()
