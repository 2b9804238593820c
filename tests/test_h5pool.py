"""The pool of open HDF5 files: bounded, least recently used closed first, each file with
small HDF5 caches; chunk offset tables as HDF5 describes the chunks."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.mounting import require_module
from vfs.cache import ChunkCache
from vfs.decode import read_chunk_index
from vfs.errors import NoAttribute
from vfs.formats import h5arrays
from vfs.formats.h5pool import H5_LOCK, POOL, FilePool, pool_files
from vfs.view import View


def small_files(folder: Path, count: int) -> list[str]:
    """``f<i>.h5`` holding ``x = [i]``."""
    paths = []
    for i in range(count):
        path = folder / f"f{i}.h5"
        with h5py.File(path, "w") as f:
            f["x"] = [i]
        paths.append(str(path))
    return paths


def test_pool_closes_the_least_recently_used(tmp_path: Path) -> None:
    paths = small_files(tmp_path, 4)
    pool = FilePool(limit=2)
    with H5_LOCK:
        f0 = pool.get(paths[0])
        f1 = pool.get(paths[1])
        assert pool.get(paths[0]) is f0  # a hit: f0 is now the most recently used
        f2 = pool.get(paths[2])  # evicts f1, not f0
        assert len(pool) == 2
        assert not f1.id.valid and f0.id.valid and f2.id.valid
        assert pool.get(paths[0])["x"][0] == 0
        pool.forget(paths[0])
        assert not f0.id.valid and len(pool) == 1
        reopened = pool.get(paths[1])
        assert reopened is not f1 and reopened["x"][0] == 1


def test_pool_files_have_the_small_caches_asked_for(tmp_path: Path) -> None:
    """Read through a view with a 64 MiB budget, every open file has HDF5's metadata
    cache at 256 KiB and h5py's chunk cache at 1 MiB (as HDF5 reports them), no dataset
    stays open, and the pool keeps the 4 files the budget allows."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        with h5py.File(src / f"f{i}.h5", "w") as f:
            f.create_dataset("d", data=np.arange(100_000, dtype="<i4") * i, chunks=(8192,), compression="gzip")
    view = View(str(src), cache_size=64 << 20)
    for i in range(6):
        with view.open(f"f{i}.h5/d.npy") as fh:
            assert np.load(fh).tobytes() == (np.arange(100_000, dtype="<i4") * i).tobytes()
    assert view.ctx.cache.stats()["reserved"] == {"hdf5_files": 4 * (4 << 20), "chunk_tables": 8 << 20}
    with H5_LOCK:
        files = POOL.files()
        assert len(files) == POOL.limit == 4
        for f in files:
            assert f.id.get_access_plist().get_mdc_config().max_size == 256 << 10
            assert f.id.get_mdc_config().max_size == 256 << 10
            assert f.id.get_access_plist().get_cache()[2] == 1 << 20
            assert h5py.h5f.get_obj_count(f.id, h5py.h5f.OBJ_DATASET) == 0


def test_chunk_table_matches_hdf5_chunk_info(tmp_path: Path) -> None:
    """The compact table gives, for every chunk, what HDF5's own ``get_chunk_info_by_coord``
    says (unwritten chunks: none), and takes 20 bytes a chunk of the grid."""
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("d", shape=(50, 70), chunks=(8, 16), dtype="<f8", compression="gzip")
        ds[:20, :] = 1.5
        ds[40:, 60:] = 2.5
    with h5py.File(path, "r") as f:
        dsid = f["d"].id
        table = read_chunk_index(dsid, (8, 16))
        expected = {}
        for i in range(dsid.get_num_chunks()):
            info = dsid.get_chunk_info(i)
            expected[(info.chunk_offset[0] // 8, info.chunk_offset[1] // 16)] = (
                info.byte_offset, info.size, info.filter_mask)
    assert len(expected) == 3 * 5 + 2 * 2 == len(table)
    for index in np.ndindex(7, 5):
        assert table.get(index) == expected.get(index)
    assert table.get((7, 0)) is None
    assert table.nbytes == 7 * 5 * 20


def test_resize_keeps_the_most_recently_used(tmp_path: Path) -> None:
    paths = small_files(tmp_path, 4)
    pool = FilePool(limit=4)
    with H5_LOCK:
        files = [pool.get(p) for p in paths]
        pool.get(paths[0])  # the most recently used now; f1 the least
        pool.resize(2)
        assert [f.id.valid for f in files] == [True, False, False, True]
        assert pool.files() == [files[3], files[0]]


def test_raw_chunk_lookups_keep_no_dropped_table_alive(tmp_path: Path) -> None:
    """Raw reads look chunks up through a weak reference to the table, through the cache
    once every TOUCH_EVERY lookups; a table the cache dropped is read again."""
    path = tmp_path / "raw.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("d", shape=(16, 8, 512), chunks=(8, 8, 256), dtype="<f4")[...] = 1
    with h5py.File(path, "r") as f:
        expected = f["d"].id.get_chunk_info_by_coord((8, 0, 256)).byte_offset
    cache = ChunkCache(64 << 20)
    lookup = h5arrays._chunk_offsets(str(path), b"/d", None, cache, ("raw",), "raw")
    assert lookup((1, 0, 1)) == expected
    share = cache.shares["chunk_tables"]
    for _ in range(h5arrays.TOUCH_EVERY - 1):  # the first of these goes through the cache
        assert lookup((1, 0, 1)) == expected
    assert (share.summary()["loads"], share.summary()["hits"]) == (1, 1)
    share.clear()  # dropped: nothing else holds it
    assert lookup((1, 0, 1)) == expected  # not a lookup through the cache, yet read again
    assert share.summary()["loads"] == 2


def test_pool_size_follows_the_budget() -> None:
    """An eighth of --cache-size at 4 MiB a file, 4 to 128 files, at most a quarter of a
    small budget (docs/layout.md, Memory)."""
    mib = 1 << 20
    assert [pool_files(n * mib) for n in (8, 16, 32, 64, 128, 1024, 2048, 4096, 8192)] == \
        [1, 1, 2, 4, 4, 32, 64, 128, 128]


def test_attributes_are_read_only_when_a_user_attribute_is_asked_for(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``ls -l`` asks every entry for ``security.selinux`` and ``system.posix_acl_access``:
    refused without reading the dataset's attributes (nor keeping them in its node)."""
    from vfs.formats import hdf5

    with h5py.File(tmp_path / "a.h5", "w") as f:
        for name in ("x", "y"):
            f.create_dataset(name, data=np.arange(4)).attrs["units"] = "mm"
    reads = []
    real = hdf5.read_attrs
    monkeypatch.setattr(hdf5, "read_attrs", lambda obj, where: reads.append(where) or real(obj, where))
    view = View(str(tmp_path))
    view.stat("a.h5/y.npy")  # the listing (it reads the root group's attributes for its conventions)
    reads.clear()
    for path in ("a.h5/x.npy", "a.h5/x.txt", "a.h5/y.npy"):
        for name in ("security.selinux", "system.posix_acl_access"):
            with pytest.raises(NoAttribute):
                view.getxattr(path, name)
    assert reads == []
    assert view.getxattr("a.h5/y.npy", "user.units") == b"mm"
    assert reads == [f"{tmp_path / 'a.h5'}:/y"]


def test_a_large_attribute_is_kept_as_its_header_text(tmp_path: Path) -> None:
    """An image's .edf header shows an attribute cut at 1,000 characters; that text, not
    the 800 KB value, is what its node keeps once the header was made (the header is the
    one made from the value: fabio reads it back)."""
    fabio = require_module("fabio")
    with h5py.File(tmp_path / "a.h5", "w", libver="latest") as f:  # dense attribute storage
        ds = f.create_dataset("img", data=np.arange(64, dtype="<u2").reshape(8, 8))
        ds.attrs["big"] = np.arange(100_000, dtype="<f8")
        ds.attrs["units"] = "mm"
    view = View(str(tmp_path))
    with view.open("a.h5/img.edf") as fh:
        (tmp_path / "img.edf").write_bytes(fh.read())
    header = fabio.open(str(tmp_path / "img.edf")).header
    assert header["units"] == "mm"
    assert header["big"] == " ".join(repr(float(v)) for v in range(100_000))[:997] + "..."
    kept = view.node("a.h5/img.edf").rendering.extra
    assert kept["units"] == "mm" and kept["big"] == header["big"]
