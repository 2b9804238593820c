"""The pool of open HDF5 files: bounded, least recently used closed first."""

from __future__ import annotations

from pathlib import Path

import h5py

from vfs.formats.h5pool import H5_LOCK, FilePool


def test_pool_closes_the_least_recently_used(tmp_path: Path) -> None:
    paths = []
    for i in range(4):
        path = tmp_path / f"f{i}.h5"
        with h5py.File(path, "w") as f:
            f["x"] = [i]
        paths.append(str(path))
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
