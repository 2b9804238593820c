"""zarr stores through real mounts, against zarr-python: every store in the shared real
and synthetic data, and stores written here with zarr (v2 and v3, folders and zips,
stored and deflated zip members, every codec path, missing chunks, sharding, strings)."""

from __future__ import annotations

import errno
import mmap
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REAL
from tests.mounting import mounted, require_module, stats

pytestmark = pytest.mark.mount
SYNTHETIC = REAL.parent / "synthetic" / "maxrf"
META = ("zarr.json", ".zarray")


def open_store(path: Path):
    zarr = require_module("zarr")
    store = zarr.storage.ZipStore(str(path), mode="r") if path.is_file() else \
        zarr.storage.LocalStore(str(path), read_only=True)
    return zarr.open_group(store, mode="r")


def array_keys(path: Path) -> set[str]:
    """Oracle for completeness: every array path in the store, from its raw key listing."""
    if path.is_file():
        names = zipfile.ZipFile(path).namelist()
    else:
        names = [os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs]
    out = set()
    for name in names:
        folder, _, meta = name.rpartition("/")
        if meta == ".zarray" or (meta == "zarr.json" and b'"array"' in read_key(path, name)):
            out.add(folder)
    return out


def read_key(path: Path, key: str) -> bytes:
    if path.is_file():
        return zipfile.ZipFile(path).read(key)
    return (path / key).read_bytes()


def zarr_can_read(root, key: str):
    try:
        return root[key]
    except Exception:
        return None


def check_store(store: Path, view: Path) -> int:
    """Every array of ``store`` in ``view`` equals zarr's reading; returns how many."""
    root = open_store(store)
    checked = 0
    for key in sorted(array_keys(store)):
        arr = zarr_can_read(root, key)
        stem = view / key
        if arr is None:  # zarr cannot read it (HyperSpy's ragged vlen-array): listed, text
            assert stem.with_name(stem.name + ".txt").exists(), key
            continue
        expected = arr[...]
        if expected.dtype.kind in "OUT":
            lines = stem.with_name(stem.name + ".txt").read_text().splitlines()
            assert lines == [str(v) for v in expected.reshape(-1)], key
        else:
            got = np.load(stem.with_name(stem.name + ".npy"), mmap_mode="r")
            assert got.shape == expected.shape, key
            assert got.dtype.newbyteorder("=") == expected.dtype.newbyteorder("="), key
            assert got.tobytes() == expected.astype(got.dtype).tobytes(), key
        for name, value in arr.attrs.items():
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                xattr = os.getxattr(stem.with_name(stem.name + (".txt" if expected.dtype.kind in "OUT" else ".npy")),
                                    f"user.{name}").decode()
                assert xattr == str(value) if isinstance(value, str) else float(xattr) == value
        checked += 1
    return checked


def test_real_and_synthetic_stores_match_zarr(tmp_path: Path) -> None:
    stores = sorted((REAL / "zarr").iterdir()) if (REAL / "zarr").is_dir() else []
    if not stores:
        pytest.skip("no shared zarr data")
    with mounted(REAL / "zarr", tmp_path / "m") as mnt:
        assert sorted(os.listdir(mnt)) == sorted([p.name for p in stores] + [".vfs-stats"])
        for store in stores:
            assert (mnt / store.name).is_dir(), store.name
            assert check_store(store, mnt / store.name) >= 1, store.name
        # the ragged markers: zarr-python 3 cannot read vlen-array; numcodecs decodes the member
        numcodecs = require_module("numcodecs")
        zspy = REAL / "zarr" / "signal2d_20x10x10-ragged_markers.zspy"
        key = "Experiments/__unnamed__/metadata/Markers/Points/kwargs/offsets"
        raw = numcodecs.Blosc().decode(zipfile.ZipFile(zspy).read(key + "/0"))
        values = numcodecs.VLenArray("<f8").decode(raw)
        lines = (mnt / zspy.name / (key + ".txt")).read_text().splitlines()
        assert [[float(x) for x in line.split()] for line in lines] == [v.tolist() for v in values]
        # group attributes as xattrs and .attrs.txt
        axis = mnt / "signal1d_10x10-DirectoryStore.zspy" / "Experiments" / "__unnamed__" / "axis-0"
        attrs = open_store(REAL / "zarr" / "signal1d_10x10-DirectoryStore.zspy")["Experiments/__unnamed__/axis-0"].attrs
        assert os.getxattr(axis, "user.scale").decode() == repr(attrs["scale"])
        assert f"size = {attrs['size']}\n" in (axis / ".attrs.txt").read_text()
        # HyperSpy axes (the conventions every zarr group gets, as HDF5 groups do) against
        # RosettaSciIO's zspy reader (which cannot read the ragged-marker store with zarr 3)
        zspy = require_module("rsciio.zspy")
        for store in stores:
            if "ragged" in store.name:
                continue
            axes = zspy.file_reader(str(store))[0]["axes"]
            for i, axis in enumerate(axes):
                got = np.load(mnt / store.name / "Experiments" / "__unnamed__" / f"axis-{i}" / "axis.npy")
                np.testing.assert_array_equal(got, axis["offset"] + axis["scale"] * np.arange(axis["size"]))
    # a store folder as SOURCE: the mount's root is the store
    store = REAL / "zarr" / "signal1d_10x10-NestedDirectoryStore.zspy"
    with mounted(store, tmp_path / "m2") as mnt:
        assert sorted(os.listdir(mnt)) == [".attrs.txt", ".vfs-stats", "Experiments"]
        assert check_store(store, mnt) == 1


def test_datastack_matches_zarr_and_a_spectrum_reads_its_chunks(tmp_path: Path) -> None:
    from tests.test_hdf5_mount import chunks_for_bytes, settled_stats

    datastack = SYNTHETIC / "synthetic_scan.datastack"
    if not datastack.exists():
        pytest.skip("no synthetic maxrf data")
    with mounted(SYNTHETIC, tmp_path / "m") as mnt:
        view = mnt / datastack.name
        expected = [f"maxrf_{n}.{s}" for n in ("maxspectrum", "sumspectrum") for s in ("npy", "txt")]
        cube_files = ["maxrf_cube.edf", "maxrf_cube.npy", "maxrf_cube.png", "maxrf_cube.txt"]
        assert sorted(os.listdir(view)) == sorted(expected + cube_files)
        sizes = {name: (view / name).stat().st_size for name in os.listdir(view)}  # ls -l
        assert sizes["maxrf_cube.npy"] == 128 + 48 * 64 * 1024 * 4
        # the cube's sizes are arithmetic: none of its chunks was read (short arrays' .txt
        # sizes come from their text, so the two spectra may have been read)
        assert f"{datastack}:/maxrf_cube" not in stats(mnt)["chunk_loads"]
        cube = open_store(datastack)["maxrf_cube"]
        shape, chunks = cube.shape, cube.chunks
        arr = np.load(view / "maxrf_cube.npy", mmap_mode="r")
        arr._mmap.madvise(mmap.MADV_RANDOM)
        header = (view / "maxrf_cube.npy").stat().st_size - int(np.prod(shape)) * 4
        label = f"{datastack}:/maxrf_cube"
        i, j = 37, 40  # the next pixels, which a sequential read prefetches, share its chunks
        before = settled_stats(mnt)
        spectrum = np.array(arr[i, j, :])
        after = settled_stats(mnt)
        np.testing.assert_array_equal(spectrum, cube[i, j, :])
        served = [tuple(r[1:]) for r in after["recent_reads"] if r[0].endswith("maxrf_cube.npy")
                  and r not in before["recent_reads"]]
        touched = chunks_for_bytes(served, header, shape, chunks, 4)
        loads = after["chunk_loads"].get(label, 0) - before["chunk_loads"].get(label, 0)
        assert {(i // chunks[0], j // chunks[1], k) for k in range(shape[2] // chunks[2])} <= touched
        assert loads == len(touched)
        assert loads < int(np.prod([s // c for s, c in zip(shape, chunks)])) // 4
        del arr
        assert check_store(datastack, view) == 3
        image = require_module("PIL.Image").open(view / "maxrf_cube.png")  # drawn after: it reads the cube
        assert image.size == (64, 48)  # the map of summed counts, width x height


def write_stores(src: Path) -> None:
    """One store per code path, all written by zarr-python."""
    zarr = require_module("zarr")
    numcodecs = require_module("numcodecs")
    rng = np.random.default_rng(7)
    cube = rng.poisson(30, (30, 20, 50)).astype("float32")
    with zarr.storage.ZipStore(str(src / "v3.datastack"), mode="w") as store:
        root = zarr.group(store=store, zarr_format=3, attributes={"title": "scan", "energy": 17.5})
        a = root.create_array("maxrf_cube", shape=cube.shape, chunks=(7, 6, 16), dtype="float32")
        a[...] = cube
        a.attrs["units"] = "counts"
        sub = root.create_group("sub")
        be = sub.create_array("be16", shape=(11, 13), chunks=(4, 5), dtype="int16",
                              serializer=zarr.codecs.BytesCodec(endian="big"),
                              compressors=[zarr.codecs.GzipCodec(), zarr.codecs.Crc32cCodec()])
        be[...] = rng.integers(-30000, 30000, (11, 13))
        tr = sub.create_array("transposed", shape=(5, 6, 7), chunks=(2, 3, 4), dtype="float64",
                              filters=[zarr.codecs.TransposeCodec(order=(2, 0, 1))], compressors=None)
        tr[...] = rng.normal(size=(5, 6, 7))
        sparse = sub.create_array("sparse", shape=(20, 20), chunks=(5, 5), dtype="int32", fill_value=-7)
        sparse[3:6, 12:14] = 5
        sh = sub.create_array("sharded", shape=(16, 20), chunks=(4, 5), shards=(8, 10), dtype="uint16")
        sh[...] = rng.integers(0, 65535, (16, 20))
        s = sub.create_array("names", shape=(5,), chunks=(2,), dtype=str)
        s[...] = np.array(["Fe", "Cu K", "", "Zn-α", "Pb"])
        c = sub.create_array("complex", shape=(6,), chunks=(4,), dtype="complex64")
        c[...] = rng.normal(size=6) + 1j * rng.normal(size=6)
        plain = sub.create_array("plain", shape=(9, 7), chunks=(4, 3), dtype="<u2", compressors=None, fill_value=9)
        plain[:8] = rng.integers(0, 60000, (8, 7))  # the last chunk row stays unwritten
        flags = sub.create_array("flags", shape=(7, 3), chunks=(3, 3), dtype="bool")
        flags[...] = rng.integers(0, 2, (7, 3)).astype(bool)
    v2 = zarr.open_group(str(src / "v2.zarr"), mode="w", zarr_format=2)
    f = v2.create_array("fortran", shape=(12, 9), chunks=(5, 4), dtype="<i4", order="F",
                        compressors=numcodecs.Blosc(cname="lz4"), filters=[numcodecs.Delta(dtype="<i4")])
    f[...] = rng.integers(0, 1000, (12, 9))
    n = v2.create_array("nested", shape=(10, 10), chunks=(3, 3), dtype=">f8",
                        chunk_key_encoding={"name": "v2", "separator": "/"}, compressors=numcodecs.Zlib())
    n[...] = rng.normal(size=(10, 10))
    v2plain = v2.create_array("plain", shape=(5, 6), chunks=(2, 4), dtype="<i4", compressors=None)
    v2plain[...] = rng.integers(-99, 99, (5, 6))
    rec = v2.create_array("records", shape=(6,), chunks=(4,), dtype=[("x", "<f8"), ("ok", "|b1")])
    rec[...] = np.array([(i * 1.5, i % 2 == 0) for i in range(6)], dtype=rec.dtype)
    v2.attrs["note"] = "version 2"
    with zipfile.ZipFile(src / "v2deflated.zspy", "w", zipfile.ZIP_DEFLATED) as zf:
        for d, _, files in os.walk(src / "v2.zarr"):
            for name in files:
                full = os.path.join(d, name)
                zf.write(full, os.path.relpath(full, src / "v2.zarr"))
    broken = zarr.open_group(str(src / "broken.zarr"), mode="w", zarr_format=2)
    broken.create_array("b", shape=(8, 8), chunks=(4, 4), dtype="<f8", compressors=numcodecs.Zlib())[...] = 1.0
    (src / "broken.zarr" / "b" / "1.1").write_bytes(b"garbage")
    with zipfile.ZipFile(src / "not_zarr.zip", "w") as zf:
        zf.writestr("readme.txt", "hello")
    (src / "plain_folder").mkdir()
    (src / "plain_folder" / "x.txt").write_text("x")


@pytest.mark.filterwarnings("ignore:Duplicate name")  # zarr's ZipStore rewrites zarr.json
def test_written_stores_match_zarr(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write_stores(src)
    with mounted(src, tmp_path / "m") as mnt:
        assert (mnt / "not_zarr.zip").is_file()
        assert (mnt / "not_zarr.zip").read_bytes() == (src / "not_zarr.zip").read_bytes()
        assert (mnt / "plain_folder" / "x.txt").read_text() == "x"
        assert sorted(os.listdir(mnt)) == [".vfs-stats", "broken.zarr", "not_zarr.zip", "plain_folder",
                                           "v2.zarr", "v2deflated.zspy", "v3.datastack"]
        for name in ("v3.datastack", "v2.zarr", "v2deflated.zspy"):
            assert (mnt / name).is_dir(), name
            assert check_store(src / name, mnt / name) == len(array_keys(src / name)), name
        # uncompressed chunks in stored zip members are read by offset, not decoded: no
        # chunk loads for them; the same array in a deflated zip is decoded
        loads = stats(mnt)["chunk_loads"]
        assert f"{src / 'v3.datastack'}:/sub/plain" not in loads
        assert f"{src / 'v2deflated.zspy'}:/plain" in loads and f"{src / 'v2.zarr'}:/plain" in loads
        assert os.getxattr(mnt / "v3.datastack", "user.title") == b"scan"
        assert os.getxattr(mnt / "v3.datastack" / "maxrf_cube.edf", "user.units") == b"counts"
        assert "note = version 2\n" in (mnt / "v2.zarr" / ".attrs.txt").read_text()
        fabio = require_module("fabio")
        frame = fabio.open(str(mnt / "v3.datastack" / "sub" / "be16.edf")).data
        np.testing.assert_array_equal(frame, open_store(src / "v3.datastack")["sub/be16"][...])
        # a damaged chunk: listed with its size, reading gives EIO, and the mount stays up
        assert (mnt / "broken.zarr" / "b.npy").stat().st_size == 128 + 8 * 8 * 8
        with pytest.raises(OSError) as err:
            (mnt / "broken.zarr" / "b.npy").read_bytes()
        assert err.value.errno == errno.EIO
        assert "fortran.npy" in os.listdir(mnt / "v2.zarr")


def test_pickle_codec_and_links_out_of_the_store_are_refused(tmp_path: Path) -> None:
    numcodecs = require_module("numcodecs")
    import json

    store = tmp_path / "src" / "evil.zarr"
    (store / "a").mkdir(parents=True)
    (store / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    (store / "a" / ".zarray").write_text(json.dumps({
        "zarr_format": 2, "shape": [2], "chunks": [2], "dtype": "|O", "compressor": None,
        "fill_value": 0, "filters": [{"id": "pickle"}], "order": "C"}))
    (store / "a" / "0").write_bytes(numcodecs.Pickle().encode(np.array(["x", "y"], dtype=object)))
    # a nested chunk folder that is a link out of the store: EIO, not the outside bytes
    zarr = require_module("zarr")
    esc = zarr.open_group(str(tmp_path / "src" / "escape.zarr"), mode="w", zarr_format=2)
    esc.create_array("b", shape=(4, 4), chunks=(2, 2), dtype="<f8", compressors=None,
                     chunk_key_encoding={"name": "v2", "separator": "/"})[...] = 1.0
    outside = tmp_path / "outside"
    (outside / "0").mkdir(parents=True)
    (outside / "0" / "0").write_bytes(np.full((2, 2), 5.0).tobytes())
    os.rename(tmp_path / "src" / "escape.zarr" / "b" / "0", tmp_path / "moved")
    (tmp_path / "src" / "escape.zarr" / "b" / "0").symlink_to(outside / "0")
    with mounted(tmp_path / "src", tmp_path / "m") as mnt:
        with pytest.raises(OSError) as err:
            (mnt / "escape.zarr" / "b.npy").read_bytes()
        assert err.value.errno == errno.EIO
        assert os.listdir(mnt / "evil.zarr") == ["a.txt"]
        with pytest.raises(OSError) as err:
            (mnt / "evil.zarr" / "a.txt").read_bytes()
        assert err.value.errno == errno.EIO


ZARR_DTYPES = ["uint8", "int16", "<u4", ">i8", "float32", ">f8", "bool", "complex64"]


@st.composite
def zarr_case(draw: st.DrawFn) -> dict:
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=rank, max_size=rank)))
    chunks = tuple(draw(st.integers(1, n + 2)) for n in shape)
    return {"shape": shape, "chunks": chunks, "dtype": draw(st.sampled_from(ZARR_DTYPES)),
            "format": draw(st.sampled_from([2, 3])), "codec": draw(st.sampled_from(["none", "zstd", "blosc", "gzip"])),
            "fill": draw(st.booleans()), "seed": draw(st.integers(0, 1000))}


def write_case(zarr, numcodecs, group, name: str, case: dict) -> None:
    v3 = {"none": None, "zstd": zarr.codecs.ZstdCodec(), "blosc": zarr.codecs.BloscCodec(), "gzip": zarr.codecs.GzipCodec()}
    v2 = {"none": None, "zstd": numcodecs.Zstd(), "blosc": numcodecs.Blosc(), "gzip": numcodecs.GZip()}
    codec = (v3 if case["format"] == 3 else v2)[case["codec"]]
    dtype = np.dtype(case["dtype"])
    kwargs = {}
    if case["format"] == 3 and dtype.byteorder == ">":
        kwargs["serializer"] = zarr.codecs.BytesCodec(endian="big")
    arr = group.create_array(name, shape=case["shape"], chunks=case["chunks"], dtype=dtype.newbyteorder("="),
                             compressors=codec, fill_value=1 if case["fill"] else None, **kwargs)
    rng = np.random.default_rng(case["seed"])
    data = rng.integers(0, 100, case["shape"]).astype(dtype)
    if dtype.kind == "c":
        data = data + 1j * rng.normal(size=case["shape"]).astype(dtype)
    if case["fill"]:  # leave the last chunk along the first axis unwritten
        cut = (case["shape"][0] - 1) // case["chunks"][0] * case["chunks"][0]
        if cut:
            arr[:cut] = data[:cut]
    else:
        arr[...] = data


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(cases=st.lists(zarr_case(), min_size=1, max_size=8))
@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_random_arrays_match_zarr(tmp_path_factory: pytest.TempPathFactory, cases: list[dict]) -> None:
    """Random dtype, shape, chunks (edge chunks included), codec, format and unwritten
    chunks, in a zip store and a folder store, against zarr's own reading."""
    zarr = require_module("zarr")
    numcodecs = require_module("numcodecs")
    base = tmp_path_factory.mktemp("zarrprop")
    src = base / "src"
    src.mkdir()
    for fmt in (2, 3):
        folder = zarr.open_group(str(src / f"f{fmt}.zarr"), mode="w", zarr_format=fmt)
        with zarr.storage.ZipStore(str(src / f"z{fmt}.zip"), mode="w") as store:
            zipped = zarr.group(store=store, zarr_format=fmt)
            for k, case in enumerate(c for c in cases if c["format"] == fmt):
                write_case(zarr, numcodecs, folder, f"a{k}", case)
                write_case(zarr, numcodecs, zipped, f"a{k}", case)
    with mounted(src, base / "m") as mnt:
        for name in sorted(os.listdir(src)):
            assert check_store(src / name, mnt / name) == len(array_keys(src / name)), name


def test_group_view_for_conventions_matches_zarr(tmp_path: Path) -> None:
    """The interface conventions use (as for HDF5 groups), on HyperSpy's zspy, against zarr."""
    from vfs.context import Context
    from vfs.formats.zarrstore import ZarrStore, ZarrView

    path = REAL / "zarr" / "signal1d_10x10-ZipStore.zspy"
    if not path.exists():
        pytest.skip("no shared zarr data")
    ref = open_store(path)["Experiments/__unnamed__"]
    view = ZarrView(ZarrStore(str(path), path.stat(), Context(root=str(tmp_path))), "Experiments/__unnamed__")
    assert view.path == "/Experiments/__unnamed__"
    assert view.members() == sorted(ref.keys())
    assert view.groups() == sorted(name for name, _ in ref.groups())
    assert view.shape("data") == ref["data"].shape and view.shape("axis-0") is None
    source = view.array("data")
    assert source is not None
    np.testing.assert_array_equal(source.read_all(), ref["data"][...])
    axis = view.group("axis-0")
    assert axis is not None and axis.path == "/Experiments/__unnamed__/axis-0"
    assert dict(axis.attrs()) == dict(ref["axis-0"].attrs)
    assert dict(view.member_attrs("axis-1")) == dict(ref["axis-1"].attrs)
    assert view.group("data") is None and view.array("axis-0") is None
