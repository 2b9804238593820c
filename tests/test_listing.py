"""Listings through a real mount: a folder of many HDF5 datasets lists with the sizes
their reads give, builds no array source until a file is read, and hands the kernel
full attributes with the names (READDIRPLUS), so ``ls -l`` makes no lookup per entry;
a folder larger than one reply of the kernel lists each name once; a file whose size
needs work first is not computed by a plain listing. In-process parts check
:class:`vfs.lazyarrays.LazySource` itself."""

from __future__ import annotations

import errno
import itertools
import os
import re
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from vfs.arrays import MemorySource
from vfs.errors import Unreadable
from vfs.lazyarrays import LazySource

DATASETS = 300


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("listing") / "src"
    src.mkdir()
    rng = np.random.default_rng(3)
    with h5py.File(src / "many.h5", "w") as f:
        for i in range(DATASETS):
            f[f"img{i:04d}"] = rng.integers(0, 1000, (32, 40), dtype=np.uint16)
        f.create_dataset("packed", data=rng.random((30, 40)), chunks=(10, 10), compression="gzip")
        f["packed"].attrs["interpretation"] = "image"
        f["title"] = "a scalar string"
        f["cube"] = rng.integers(0, 5, (4, 5, 512), dtype=np.int32)
        f["table"] = rng.random((10, 3))  # small: the short text layout, made to know its size
    return src


def ls_l(folder: Path) -> dict[str, os.stat_result]:
    with os.scandir(folder) as it:
        return {e.name: e.stat(follow_symlinks=False) for e in it}


@pytest.mark.mount
def test_listing_sizes_match_reads_and_numpy(many: Path, mount) -> None:  # type: ignore[no-untyped-def]
    with h5py.File(many / "many.h5") as f:
        names = sorted(f)
        want = {name: f[name][()] for name in ("img0000", "img0299", "packed", "cube")}
        want_table = f["table"][()]
    with mount(many) as mnt:
        listed = ls_l(mnt / "many.h5")
        dots = subprocess.run(["ls", "-a", str(mnt / "many.h5")], capture_output=True, text=True, check=True)
        assert dots.stdout.splitlines()[:2] == [".", ".."]
        stems = {n.split(".")[0] for n in listed if not n.startswith(".")}
        assert stems == set(names)
        for name in ("img0000.npy", "img0299.txt", "img0150.edf", "img0007.png", "packed.npy", "packed.png", "packed.txt",
                     "cube.npy", "cube.png", "title.txt", ".packed.attrs.txt", "table.txt"):
            data = (mnt / "many.h5" / name).read_bytes()
            assert listed[name].st_size == len(data), name  # the size the listing gave
        # the text rule: an image above 1,024 values keeps the fixed width (uint16: 5
        # digits and a separator each), a small table gets Python's shortest repr
        assert listed["img0000.txt"].st_size == 32 * 40 * 6
        # a float image of up to 100,000 values: the shortest digits (Python's repr), each
        # in a fixed 24-character cell padded with spaces, so the size is arithmetic
        assert listed["packed.txt"].st_size == 30 * 40 * 25
        lines = (mnt / "many.h5" / "packed.txt").read_text().splitlines()
        assert [line.split() for line in lines] == [[repr(v) for v in row] for row in want["packed"].tolist()]
        table = want_table
        assert (mnt / "many.h5" / "table.txt").read_text() == "".join(
            " ".join(repr(v) for v in row) + "\n" for row in table.tolist())
        for stem, value in want.items():
            got = np.load(mnt / "many.h5" / f"{stem}.npy", mmap_mode="r")
            assert got.dtype == value.dtype and np.array_equal(got, value)


@pytest.mark.mount
def test_ls_l_makes_no_lookup_per_entry(many: Path, tmp_path: Path) -> None:
    """The mount's debug log shows every request libfuse gets: after the listing, the
    ``lstat`` of each entry is answered by the kernel from the listing (no LOOKUP)."""
    from tests.mounting import mounted

    log = tmp_path / "debug.log"
    with mounted(many, tmp_path / "mnt", "--debug", log_file=log) as mnt:
        os.listdir(mnt)
        os.stat(mnt / "many.h5")
        out = log.with_suffix(".out")
        mark = out.stat().st_size
        listed = ls_l(mnt / "many.h5")
        text = out.read_bytes()[mark:].decode("utf-8", "replace")
    assert len(listed) > 4 * DATASETS
    ops = re.findall(r"opcode: (\w+)", text)
    assert "READDIRPLUS" in ops
    lookups = re.findall(r"^LOOKUP (\S+)", text, re.M)
    # files whose size needs a read first (the scalar's text, the attribute text, the
    # short text of a small table) are looked up when stat'ed; every other entry (images'
    # fixed-width texts included) was given with the listing
    assert sorted(lookups) == sorted(f"/many.h5/{n}" for n in ("title.txt", ".packed.attrs.txt", "table.txt"))


@pytest.mark.mount
def test_folder_larger_than_one_reply_lists_each_name_once(tmp_path: Path, mount) -> None:  # type: ignore[no-untyped-def]
    """8,000 entries of 150-byte names: several READDIRPLUS replies (offset mode)."""
    src = tmp_path / "src"
    src.mkdir()
    names = [f"{i:05d}" + "x" * 145 for i in range(8000)]
    for i, name in enumerate(names):
        (src / name).write_bytes(b"y" * (i % 7))
    with mount(src) as mnt:
        first = os.listdir(mnt)
        listed = ls_l(mnt)
    assert sorted(first) == sorted(names + [".vfs-stats"])
    assert len(first) == len(set(first))
    assert {n: s.st_size for n, s in listed.items() if n != ".vfs-stats"} == \
        {n: (src / n).stat().st_size for n in names}


def test_plain_listing_reads_no_text(tmp_path: Path) -> None:
    """In-process: a listing with attributes (READDIRPLUS) leaves files whose content
    makes their size unmade, and gives full attributes for the rest."""
    from vfs.mount import VfsOperations
    from vfs.nodes import BytesFile, Directory, Entries
    from vfs.tree import MountRoot
    from vfs.view import View

    made: list[str] = []

    class Folder(Directory):
        def load(self) -> Entries:
            e = Entries()
            e.add("lazy.txt", BytesFile(11, 0, lambda: made.append("lazy") or b"abc"))  # type: ignore[func-returns-value]
            e.add("ready.txt", BytesFile(12, 0, b"hello"))
            return e

    view = View(tmp_path)
    view.root = MountRoot(Folder(2, 0), view.ctx)
    ops = VfsOperations(view)
    page = {name: (attrs, full) for name, attrs, full in ops.readdir_page("/", 0, True)}
    assert made == []
    assert page["ready.txt"] == (ops.getattr("/ready.txt"), True) and page["ready.txt"][0]["st_size"] == 5
    assert page["lazy.txt"][1] is False and "st_size" not in page["lazy.txt"][0]
    assert [name for name, _, _ in ops.readdir_page("/", 3, True)] == ["ready.txt", ".vfs-stats"]  # from 3 on
    assert ops.getattr("/lazy.txt")["st_size"] == 3 and made == ["lazy"]


def test_a_listing_in_progress_keeps_its_snapshot(tmp_path: Path) -> None:
    """In-process: the pages of one listing (opendir .. releasedir) come from the snapshot
    its first page saw, although the folder is dropped and a file appears meanwhile; a
    listing read again from the start (rewinddir) shows the folder as it is now."""
    from vfs.mount import VfsOperations
    from vfs.view import View

    (tmp_path / "big").mkdir()
    for i in range(10):
        (tmp_path / "big" / f"f{i}.txt").write_bytes(b"plain text\n" * 500)
    view = View(tmp_path)
    ops = VfsOperations(view)
    plus, plain = ops.opendir("/big"), ops.opendir("/big")
    first = [name for name, _, _ in itertools.islice(ops.readdir_page("/big", 0, True, plus), 6)]
    assert ops.listing("/big", plain, 0).names[:4] == ["f0.txt", "f1.txt", "f2.txt", "f3.txt"]
    (tmp_path / "big" / "a_new.txt").write_bytes(b"x" * 5000)  # sorts first: shifts every offset
    assert view.root.inner.child("big").drop()  # type: ignore[attr-defined]
    rest = [name for name, _, _ in ops.readdir_page("/big", 6, True, plus)]
    assert first + rest == [".", ".."] + [f"f{i}.txt" for i in range(10)]
    assert ops.listing("/big", plain, 5).names == [f"f{i}.txt" for i in range(10)]
    assert ops.listing("/big", plain, 0).names == ["a_new.txt"] + [f"f{i}.txt" for i in range(10)]  # rewound
    assert ops.releasedir("/big", plus) == ops.releasedir("/big", plain) == 0


def test_lazy_source_builds_once_on_first_read() -> None:
    values = np.arange(12, dtype=np.int16).reshape(3, 4)
    calls: list[int] = []

    def build() -> MemorySource:
        calls.append(1)
        return MemorySource(values, "m")

    lazy = LazySource((3, 4), np.dtype(np.int16), "m", build, attrs=lambda: {"k": 1})
    assert (lazy.shape, lazy.dtype, lazy.nbytes, calls) == ((3, 4), np.int16, 24, [])
    assert dict(lazy.attrs) == {"k": 1} and calls == []
    assert np.array_equal(lazy.read_all(), values) and calls == [1]
    assert lazy.read_bytes(2, 6) == values.tobytes()[2:6]
    assert lazy.chunks == (3, 4) and calls == [1]


def test_lazy_source_refuses_a_changed_array() -> None:
    lazy = LazySource((3, 4), np.dtype(np.int16), "m", lambda: MemorySource(np.zeros((3, 5), np.int16), "m"))
    with pytest.raises(Unreadable) as info:
        lazy.read_flat(0, 2)
    assert info.value.errno == errno.EIO
