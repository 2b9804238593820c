"""The mount's memory stays under ``--cache-size`` + 300 MB however much is walked.

HDF5: chunk offset tables and open files are counted in ``--cache-size`` (see the last
test); what HDF5 itself keeps per open file is read back from h5py in the mount.

A generated tree of SPEC files with many scans and columns (534,312 virtual entries from
7.7 MB of text) is walked with ``find``, which lists every folder and so builds every
node; the mount's peak resident set (VmHWM, read from /proc by the test) must stay
under the bound, and folders dropped on the way must come back with the same content
and inode numbers. A tree of 20,000 *source* files is walked the same way with a small
``--max-nodes``: source folders' listings are dropped too, and listed again without
opening their files.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import h5py
import numpy as np

from tests.conftest import MountFactory
from tests.h5data import MANY_CHUNK, MANY_CHUNKS, MANY_DATASETS, MANY_FILES, write_many_chunked
from tests.mounting import memory_kib, mount_pid, stats

FILES, SCANS, COLUMNS, POINTS = 10, 130, 200, 3
CACHE = 64 << 20
BOUND = CACHE + (300 << 20)


def write_tree(root: Path) -> None:
    """SPEC files whose scan ``s`` has column ``c<j>`` holding ``j * 1000 + s`` at every point."""
    root.mkdir()
    labels = "  ".join(f"c{j}" for j in range(COLUMNS))
    for f in range(FILES):
        parts = [f"#F f{f}.spec\n#E 1\n#D Thu Jan 01 00:00:00 1970\n\n"]
        for s in range(1, SCANS + 1):
            row = " ".join(str(j * 1000 + s) for j in range(COLUMNS)) + "\n"
            parts.append(f"#S {s} ascan\n#N {COLUMNS}\n#L {labels}\n{row * POINTS}\n")
        (root / f"f{f:03d}.spec").write_text("".join(parts))


def expected_entries() -> int:
    """What ``find`` prints by docs/layout.md: the root and .vfs-stats; per file its folder;
    per scan its folder, title.txt, start_time.txt, data.txt, scan.spec, instrument/,
    specfile/ with two files, positioners/ (empty: no motors), measurement/ with a .npy
    and a .txt per column."""
    per_scan = 1 + 4 + 1 + 3 + 1 + 1 + 2 * COLUMNS
    return 2 + FILES * (1 + SCANS * per_scan)


def test_walk_of_half_a_million_entries_stays_under_the_bound(tmp_path: Path, mount: MountFactory) -> None:
    src = tmp_path / "src"
    write_tree(src)
    with mount(src, "--cache-size", "64M") as mnt:
        first = mnt / "f000.spec" / "1.1" / "measurement" / "c7.npy"
        ino_before = os.stat(first).st_ino
        out = subprocess.run(["find", str(mnt)], capture_output=True, check=True, timeout=600).stdout
        count = out.count(b"\n")
        # the first scans' folders were dropped long ago: rebuilt, they serve the same
        after = np.array(np.load(first, mmap_mode="r"))
        ino_after = os.stat(first).st_ino
        last = np.load(mnt / f"f{FILES - 1:03d}.spec" / f"{SCANS}.1" / "measurement" / "c199.npy")
        peak = memory_kib(mount_pid(mnt)) << 10
    assert count == expected_entries() >= 500_000
    np.testing.assert_array_equal(after, np.full(POINTS, 7 * 1000 + 1.0))
    np.testing.assert_array_equal(last, np.full(POINTS, 199 * 1000 + SCANS, dtype=np.float64))
    assert ino_after == ino_before
    assert peak < BOUND, f"peak RSS {peak >> 20} MiB, bound {BOUND >> 20} MiB"


SOURCE_FOLDERS, PER_FOLDER, MAX_NODES = 20, 1000, 5000


def write_source_tree(root: Path, folders: int = SOURCE_FOLDERS, per_folder: int = PER_FOLDER,
                      h5: bytes | None = None) -> None:
    """``folders`` folders of ``per_folder`` files: every tenth a one-scan SPEC file (shown
    as a folder), with ``h5`` every twentieth an HDF5 file of these bytes, the others plain
    files of 5,000 bytes (sparse after a first line)."""
    spec = b"#F s\n#S 1 ascan\n#N 2\n#L a  b\n1 2\n"
    for d in range(folders):
        folder = root / f"d{d:03d}"
        folder.mkdir(parents=True)
        for i in range(per_folder):
            if i % 10 == 0:
                (folder / f"s{i:05d}.spec").write_bytes(spec)
            elif h5 is not None and i % 20 == 5:
                (folder / f"h{i:05d}.h5").write_bytes(h5)
            else:
                fd = os.open(folder / f"f{i:05d}.dat", os.O_WRONLY | os.O_CREAT, 0o644)
                os.write(fd, f"plain file {d} {i}\n".encode())
                os.ftruncate(fd, 5000)
                os.close(fd)


def test_walk_of_source_files_drops_and_relists_folders_without_opening_files(
        tmp_path: Path, mount: MountFactory) -> None:
    src = tmp_path / "src"
    write_source_tree(src)
    with mount(src, "--cache-size", "64M", "--max-nodes", str(MAX_NODES)) as mnt:
        held = open(mnt / "d000" / "f00001.dat", "rb")  # a file open while its folder is dropped
        inos = {}
        for d in range(SOURCE_FOLDERS):
            folder = mnt / f"d{d:03d}"
            names = os.listdir(folder)
            assert names == sorted(os.listdir(src / folder.name))
            inos[folder.name] = {name: os.lstat(folder / name).st_ino for name in names}
        walked = stats(mnt)
        with held:  # its folder was dropped: the read looks its path up, and the folder is listed again
            first_line = held.readline()
        again = {entry.name: entry.inode() for entry in os.scandir(mnt / "d000")}  # readdir's numbers
        relisted = stats(mnt)
        stat_inos = {name: os.lstat(mnt / "d000" / name).st_ino for name in again}
        spec_folder = os.listdir(mnt / "d000" / "s00010.spec")
        peak = memory_kib(mount_pid(mnt)) << 10
    listings = walked["source_listings"]
    # (a) the listings held stay under the bound: each entry weighs at least one node
    assert listings["held_entries"] <= MAX_NODES < SOURCE_FOLDERS * PER_FOLDER
    assert listings["listings"] == SOURCE_FOLDERS + 1  # every folder listed once: no rebuild while walking
    assert listings["drops"] >= SOURCE_FOLDERS - MAX_NODES // PER_FOLDER
    assert walked["live_nodes"]["peak"] <= MAX_NODES
    assert peak < BOUND, f"peak RSS {peak >> 20} MiB, bound {BOUND >> 20} MiB"
    # (b) the folder dropped first lists the same names and inode numbers again
    assert list(again) == sorted(os.listdir(src / "d000"))
    assert again == inos["d000"] == stat_inos
    assert first_line == b"plain file 0 1\n"
    assert spec_folder == ["1.1"]
    # (c) it was built again once (it had been dropped) and opened none of its files to do so
    assert relisted["source_listings"]["listings"] == listings["listings"] + 1
    assert relisted["file_kinds"]["sniffs"] == walked["file_kinds"]["sniffs"] == SOURCE_FOLDERS * PER_FOLDER


def test_hdf5_tables_and_open_files_stay_in_the_budget(tmp_path: Path, mount: MountFactory) -> None:
    """60 datasets of 10,000 chunks each (6 files) read with ``--cache-size 64M``: their
    chunk offset tables (200,000 bytes each) share 8 MiB, the least recently read are
    dropped and read again when needed; at most 4 files are open, each with HDF5's
    metadata cache at 256 KiB (as HDF5 reports it); data equal h5py's throughout."""
    src = tmp_path / "h5many"
    write_many_chunked(src)
    table = MANY_CHUNKS * 20  # limits.CHUNK_TABLE_ENTRY bytes a chunk
    with mount(src, "--cache-size", "64M") as mnt:
        for i in range(MANY_FILES):
            with h5py.File(src / f"f{i}.h5", "r") as f:
                for j in range(MANY_DATASETS):
                    got = np.load(mnt / f"f{i}.h5" / f"d{j}.npy", mmap_mode="r")
                    np.testing.assert_array_equal(got[:MANY_CHUNK], f[f"d{j}"][:MANY_CHUNK])
        walked = stats(mnt)
        with h5py.File(src / "f0.h5", "r") as f:  # its table was dropped long ago: read again
            again = np.load(mnt / "f0.h5" / "d0.npy", mmap_mode="r")  # (bytes the kernel does not hold)
            np.testing.assert_array_equal(again[-3 * MANY_CHUNK :], f["d0"][-3 * MANY_CHUNK :])
        after = stats(mnt)
        peak = memory_kib(mount_pid(mnt)) << 10
    # 64 MiB: up to an eighth (8 MiB) for tables, up to 4 files (the floor) of 4 MiB, the
    # rest for chunks; what the tables and the open files hold now is taken out
    assert walked["reserved"] == {"hdf5_files": 4 * (4 << 20), "chunk_tables": 8 << 20}
    tables = walked["shares"]["chunk_tables"]
    assert walked["budget"] == (64 << 20) - walked["hdf5_files"]["open"] * (4 << 20) - tables["bytes"]
    assert tables["budget"] == 8 << 20
    assert tables["loads"] == MANY_FILES * MANY_DATASETS  # each table read once while in use
    assert tables["entries"] == (8 << 20) // table == 41  # the budget full, no more
    assert tables["bytes"] == tables["peak_bytes"] == 41 * table
    assert after["shares"]["chunk_tables"]["loads"] == MANY_FILES * MANY_DATASETS + 1
    files = after["hdf5_files"]
    assert files["limit"] == 4 and files["open"] == 4 and files["opens"] >= MANY_FILES
    assert [c["max_size"] for c in files["metadata_caches"]] == [256 << 10] * 4
    assert all(c["size"] <= 256 << 10 and c["datasets_open"] == 0 for c in files["metadata_caches"])
    assert peak < BOUND, f"peak RSS {peak >> 20} MiB, bound {BOUND >> 20} MiB"
