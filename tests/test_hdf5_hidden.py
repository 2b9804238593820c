"""Nothing h5py can read is hidden: compound datasets with variable-length members
become text with their fields as columns (awk sees the columns), datasets with an
undefined fill value (HDF5 1.4-era writers) read as h5py reads them, and an object the
mount cannot render is still listed (size 0, EIO, one log line). h5py is the oracle."""

from __future__ import annotations

import codecs
import ctypes
import errno
import glob
import os
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

pytestmark = pytest.mark.mount

NAMES = [b"plain", b"with space", b'quo"te', b"", "ünï".encode(), b"new\nline", b"tab\there", b"back\\slash"]
VLEN = np.dtype([("name", h5py.string_dtype()), ("value", "<f8"), ("pair", "<i4", (2,))])
SEQ = np.dtype([("id", "<i2"), ("counts", h5py.vlen_dtype(np.dtype("<i4")))])


def undefined_fill(f: h5py.File, name: str, data: np.ndarray, chunks: tuple[int, ...] | None) -> None:
    """A dataset whose fill value is undefined, as HDF5 1.4 wrote them: h5py cannot
    set that, so the HDF5 library h5py bundles is called for H5Pset_fill_value(NULL)."""
    libs = glob.glob(os.path.join(os.path.dirname(h5py.__file__), os.pardir, "h5py.libs", "libhdf5-*.so*"))
    lib = ctypes.CDLL(libs[0] if libs else h5py.h5.__file__)
    lib.H5Pset_fill_value.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    if chunks:
        dcpl.set_chunk(chunks)
    tid = h5py.h5t.py_create(data.dtype)
    assert lib.H5Pset_fill_value(dcpl.id, tid.id, None) >= 0
    h5py.h5d.create(f.id, name.encode(), tid, h5py.h5s.create_simple(data.shape), dcpl=dcpl)
    f[name][...] = data


@pytest.fixture(scope="module")
def hidden(tmp_path_factory):
    src = tmp_path_factory.mktemp("hidden")
    path = src / "h.h5"
    with h5py.File(path, "w") as f:
        table = np.zeros(len(NAMES), VLEN)
        table["name"] = NAMES
        table["value"] = np.arange(len(NAMES)) * 1.25 - 2
        table["pair"] = np.arange(2 * len(NAMES)).reshape(-1, 2)
        f.create_dataset("table", data=table)
        f["table_link"] = h5py.SoftLink("/table")
        big = np.zeros(70_000, VLEN)  # more rows than one block of the text builder
        big["name"] = [f"row {i}".encode() for i in range(len(big))]
        big["value"] = np.arange(len(big)) / 4
        f.create_dataset("big_table", data=big)
        f.create_dataset("one_record", data=table[1])
        seq = np.zeros(3, SEQ)
        seq["id"] = [7, 8, 9]
        seq["counts"] = [np.array([1, 2, 3], "<i4"), np.array([], "<i4"), np.array([-4], "<i4")]
        f.create_dataset("sequences", data=seq)
        f.create_dataset("fixed", data=np.array([(1, 2.5), (3, 4.5)], [("a", "<i4"), ("b", ">f8")]))
        undefined_fill(f, "old_contiguous", np.arange(12, dtype="<i4").reshape(3, 4), None)
        undefined_fill(f, "old_chunked", np.arange(60, dtype="<f8").reshape(6, 10), (3, 5))
    with h5py.File(path, "r") as f:
        with pytest.raises(RuntimeError, match="fill value is undefined"):
            f["old_contiguous"].fillvalue  # the fixture is what the bug report describes
    return src, path


def unescape(cell: str) -> bytes:
    """An independent decoder of octal escapes: Python's own escape codec."""
    return b"" if cell == '""' else codecs.escape_decode(cell.encode())[0]


def test_compound_with_vlen_members_is_text(hidden, mount):
    src, path = hidden
    with mount(src) as mnt, h5py.File(path, "r") as f:
        folder = mnt / "h.h5"
        names = os.listdir(folder)
        assert "table.txt" in names and "table.npy" not in names
        assert os.readlink(folder / "table_link.txt") == "table.txt"
        lines = (folder / "table.txt").read_text().splitlines()
        assert lines[0] == "# name value pair[0] pair[1]"
        table = f["table"][()]
        assert len(lines) == 1 + len(table)
        for line, row in zip(lines[1:], table):
            cells = line.split()  # awk's default field splitting
            assert len(cells) == 4, line
            assert unescape(cells[0]) == row["name"]
            assert float(cells[1]) == row["value"]
            assert [int(c) for c in cells[2:]] == row["pair"].tolist()
        awk = subprocess.run(["awk", "NR > 1 { s += $2; n++ } END { print n, s }", str(folder / "table.txt")],
                             capture_output=True, text=True, check=True).stdout.split()
        assert awk == [str(len(table)), f"{table['value'].sum():g}"]
        seq = (folder / "sequences.txt").read_text().splitlines()
        assert seq[1:] == [f"{r['id']} {','.join(map(str, r['counts'])) or chr(34) * 2}" for r in f["sequences"][()]]


def test_fixed_compound_still_npy(hidden, mount):
    src, path = hidden
    with mount(src) as mnt, h5py.File(path, "r") as f:
        got = np.load(mnt / "h.h5" / "fixed.npy")
        assert got.dtype == f["fixed"].dtype
        assert got.tolist() == f["fixed"][()].tolist()


@pytest.mark.parametrize("name", ["old_contiguous", "old_chunked"])
def test_undefined_fill_value_reads_as_h5py(hidden, mount, name):
    src, path = hidden
    with mount(src) as mnt, h5py.File(path, "r") as f:
        assert sorted(n for n in os.listdir(mnt / "h.h5") if n.startswith(name)) == \
            [f"{name}.edf", f"{name}.npy", f"{name}.png", f"{name}.txt"]
        np.testing.assert_array_equal(np.load(mnt / "h.h5" / f"{name}.npy", mmap_mode="r"), f[name][()])
        np.testing.assert_array_equal(np.loadtxt(mnt / "h.h5" / f"{name}.txt"), f[name][()])


def test_unrenderable_objects_are_listed(real_data, mount, tmp_path):
    """times-nested-be.h5 holds H5T_TIME data h5py cannot read: listed, size 0, EIO."""
    log = tmp_path / "unrenderable.log"
    with mount(real_data / "hdf5", "--log-file", str(log)) as mnt:
        folder = mnt / "times-nested-be.h5"
        with h5py.File(real_data / "hdf5" / "times-nested-be.h5", "r") as f:
            expected = set(f)
        shown = {n.split(".")[0] for n in os.listdir(folder) if not n.startswith(".")}
        assert expected <= shown
        for name in os.listdir(folder):
            if name.split(".")[0] in expected and not (folder / name).is_dir():
                assert (folder / name).stat().st_size == 0
                for _ in range(2):
                    with pytest.raises(OSError) as err:
                        (folder / name).read_bytes()
                    assert err.value.errno == errno.EIO
        text = log.read_text()
    assert text.count("times-nested-be.h5:/tbl: unsupported datatype") == 1


def test_long_and_scalar_vlen_compounds(hidden, mount):
    src, path = hidden
    with mount(src) as mnt, h5py.File(path, "r") as f:
        lines = (mnt / "h.h5" / "big_table.txt").read_text().splitlines()
        big = f["big_table"][()]
        assert len(lines) == 1 + len(big) and lines[0].startswith("#")
        assert not any(line.startswith("#") for line in lines[1:])
        for i in (0, 65535, 65536, len(big) - 1):
            name, value = lines[1 + i].split()[:2]
            assert unescape(name) == big["name"][i] and float(value) == big["value"][i]
        one = (mnt / "h.h5" / "one_record.txt").read_text().splitlines()
        record = f["one_record"][()]
        assert one[0] == "# name value pair[0] pair[1]"
        assert unescape(one[1].split()[0]) == record["name"] and float(one[1].split()[1]) == record["value"]
