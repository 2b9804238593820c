"""SPEC files through a real FUSE mount: what ls, awk, numpy and silx see, and live files."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import MountFactory
from tests.mounting import require_module
from tests.test_spec_silx import NOT_SPEC, spec_files
from vfs.formats import specparse as sp
from vfs.formats import specindex as si

silx_specfile = require_module("silx.io.specfile")

HEADER = b"#F live.spec\n#E 1700000000\n#D Tue Nov 14 22:13:20 2023\n#O0 th  tth\n\n"


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> float:
    """Poll ``check`` until it holds; return how long that took (fail after ``timeout``)."""
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except (OSError, ValueError):
            # ValueError: numpy met an .npy whose size the kernel still caches from
            # before the append (attributes are cached for up to 1 s): not yet
            pass
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true after {timeout} s")
        time.sleep(0.02)


def silx_columns(scan: object) -> dict[str, np.ndarray]:
    """First column of each label, as silx gives it (``\\r`` of CRLF files removed)."""
    data = np.asarray(scan.data).T  # type: ignore[attr-defined]
    out: dict[str, np.ndarray] = {}
    for j, label in enumerate(scan.labels):  # type: ignore[attr-defined]
        if data.size:
            out.setdefault(label.rstrip("\r").replace("/", "%"), data[:, j])
    return out


def same_values(ours: np.ndarray, theirs: np.ndarray) -> bool:
    """Equal, except where silx read a word (``nan``, ``None``) as 0 and we give NaN."""
    if ours.shape != theirs.shape:
        return False
    differ = ~((ours == theirs) | (np.isnan(ours) & np.isnan(theirs)))
    return bool((np.isnan(ours[differ]) & (theirs[differ] == 0)).all())


def test_walk_every_real_spec_file(real_data: Path, mount: MountFactory, caplog: pytest.LogCaptureFixture) -> None:
    """os.walk each file's folder; every column .npy equals silx's column."""
    caplog.set_level(logging.ERROR)
    with mount(real_data / "spec") as mnt:
        for name in NOT_SPEC:
            assert (mnt / name).is_file()
            assert (mnt / name).read_bytes() == (real_data / "spec" / name).read_bytes()
        compared = 0
        for path in spec_files(real_data):
            folder = mnt / path.name
            walked = {Path(top).relative_to(folder).as_posix(): files for top, _, files in os.walk(folder)}
            sf = silx_specfile.SpecFile(str(path))
            assert sorted(k for k in walked if k.count("/") == 0 and k != ".") == sorted(sf.keys())
            for key in sf.keys():
                files = set(walked[f"{key}/measurement"])
                for label, theirs in silx_columns(sf[key]).items():
                    if f"{label}.npy" not in files:
                        assert all(f"{w}.npy" in files for w in label.split()), (path.name, key, label)
                        continue  # a single-spaced #L line that #N confirms: split (silx: one label)
                    ours = np.load(folder / key / "measurement" / f"{label}.npy")
                    assert same_values(ours, theirs), (path.name, key, label)
                    compared += 1
        assert compared > 10000


def test_awk_and_numpy_read_the_text_files(real_data: Path, mount: MountFactory) -> None:
    with mount(real_data / "spec") as mnt:
        for file, key in (("CdOsO", "5.1"), ("33bm_spec.dat", "17.1"), ("twoc.dat", "2.2"), ("lmn40.spe", "14.1")):
            scan = mnt / file / key
            columns = sorted((scan / "measurement").glob("*.npy"))
            table = np.loadtxt(scan / "data.txt", ndmin=2)
            header = (scan / "data.txt").read_text().splitlines()[0]
            assert header.startswith("#L ")
            assert table.shape[1] == len(header[3:].split("  "))
            for column in columns[:6]:
                values = np.load(column)
                if np.isnan(values).any():
                    continue
                out = subprocess.run(["awk", "{s += $1} END {printf \"%.17g\", s}", str(column.with_suffix(".txt"))],
                                     capture_output=True, text=True, check=True).stdout
                assert float(out) == sum(values.tolist()), column  # awk adds in file order, as sum() does
                assert np.isclose(float(out), values.sum(), rtol=1e-12, atol=0)
                assert any(np.array_equal(values, table[:, j]) for j in range(table.shape[1]))


def test_silx_reads_scan_spec_back(real_data: Path, mount: MountFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    with mount(real_data / "spec") as mnt:
        checked = 0
        for path in spec_files(real_data):
            original = silx_specfile.SpecFile(str(path))
            for key in original.keys():
                single = silx_specfile.SpecFile(str(mnt / path.name / key / "scan.spec"))
                number = key.split(".")[0]
                assert single.keys() == [f"{number}.1"]
                a, b = original[key], single[0]
                assert a.labels == b.labels
                assert np.array_equal(a.data, b.data)
                ours = (mnt / path.name / key / "instrument" / "specfile" / "scan_header.txt").read_bytes()
                assert [ln.rstrip("\r") for ln in b.scan_header] == sp.decode(ours).splitlines()
                n_mca = a._specfile.number_of_mca(a.index)  # without silx's #@CALIB parse (issue109 11.1)
                assert b._specfile.number_of_mca(b.index) == n_mca
                for i in range(n_mca):
                    assert np.array_equal(a._specfile.get_mca(a.index, i), b._specfile.get_mca(b.index, i))
                checked += 1
        assert checked > 900


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)
        fh.flush()


def test_a_growing_file_is_followed(tmp_path: Path, mount: MountFactory) -> None:
    src = tmp_path / "src"
    src.mkdir()
    live = src / "live.spec"
    live.write_bytes(HEADER)
    with mount(src) as mnt:
        folder = mnt / "live.spec"
        assert folder.is_dir() and os.listdir(folder) == []

        def column(key: str, name: str = "th") -> list[float]:
            return list(np.load(folder / key / "measurement" / f"{name}.npy").tolist())

        latencies = []
        append(live, b"#S 1  ascan  th 0 1  3 1\n#D Tue Nov 14 22:14:00 2023\n#P0 0.5 1\n#N 3\n#L th  tth  I0\n")
        latencies.append(wait_until(lambda: os.listdir(folder) == ["1.1"]))
        assert column("1.1") == []
        append(live, b"0 0.1 100\n0.5 0.2 ")  # the second point is half written
        latencies.append(wait_until(lambda: column("1.1") == [0.0]))
        time.sleep(1.2)
        assert column("1.1") == [0.0], "a line without its newline is not data yet"
        append(live, b"101\n1 0.3 102\n")
        latencies.append(wait_until(lambda: column("1.1") == [0, 0.5, 1]))
        first_read = (folder / "1.1" / "measurement" / "I0.txt").read_bytes()
        append(live, b"#C scan done\n\n#S 2  ascan  th 1 2  1 1\n#P0 1 2\n#N 3\n#L th  tth  I0\n5 6 7\n")
        latencies.append(wait_until(lambda: sorted(os.listdir(folder)) == ["1.1", "2.1"]))
        assert column("2.1") == [5]
        assert column("1.1") == [0, 0.5, 1]
        assert (folder / "1.1" / "measurement" / "I0.txt").read_bytes() == first_read
        assert (folder / "2.1" / "instrument" / "positioners" / "tth.npy").exists()
        append(live, b"6 7 8\n")
        latencies.append(wait_until(lambda: column("2.1") == [5, 6]))
        assert max(latencies) < 2.5, latencies


def test_truncated_or_replaced_file(tmp_path: Path, mount: MountFactory) -> None:
    src = tmp_path / "src"
    src.mkdir()
    path = src / "f.spec"
    one = b"#S 1 a\n#L x  y\n1 2\n3 4\n\n"
    two = b"#S 2 b\n#L x  y\n5 6\n"
    path.write_bytes(HEADER + one + two)
    with mount(src) as mnt:
        folder = mnt / "f.spec"
        assert sorted(os.listdir(folder)) == ["1.1", "2.1"]
        assert np.load(folder / "2.1" / "measurement" / "x.npy").tolist() == [5]
        with open(path, "r+b") as fh:
            fh.truncate(len(HEADER + one))
        wait_until(lambda: os.listdir(folder) == ["1.1"])
        with pytest.raises(OSError) as exc:
            (folder / "2.1" / "measurement" / "x.npy").read_bytes()
        assert exc.value.errno in (errno.ENOENT, errno.EIO)
        assert np.load(folder / "1.1" / "measurement" / "x.npy").tolist() == [1, 3]
        new = src / "new.tmp"
        new.write_bytes(HEADER + b"#S 7 c\n#L x  y\n9 9\n")
        os.replace(new, path)
        wait_until(lambda: os.listdir(folder) == ["7.1"])
        assert np.load(folder / "7.1" / "measurement" / "y.npy").tolist() == [9]
        path.write_bytes(b"")  # emptied in place: an empty folder, no crash
        wait_until(lambda: folder.is_dir() and os.listdir(folder) == [])


def test_index_of_real_files_matches_silx_keys(real_data: Path) -> None:
    for path in spec_files(real_data):
        index = si.build_index(path.read_bytes())
        assert [index.blocks[i].key for i in index.scans()] == silx_specfile.SpecFile(str(path)).keys()


def test_pymca_reads_scan_spec_back(real_data: Path, mount: MountFactory) -> None:
    """PyMca's own SPEC reader (a separate C implementation) gives the same scan from
    ``N.M/scan.spec`` as from the original file: labels, data and MCA spectra."""
    specfile = require_module("PyMca5.PyMcaIO.specfile")
    with mount(real_data / "spec") as mnt:
        checked = 0
        for path in spec_files(real_data):
            try:
                original = specfile.Specfile(str(path))
            except Exception:
                continue  # PyMca refuses the file as a whole: nothing to compare with
            seen: dict[int, int] = {}
            for i in range(original.scanno()):
                scan = original[i]
                number = scan.number()
                seen[number] = seen.get(number, 0) + 1
                key = f"{number}.{seen[number]}"
                single = specfile.Specfile(str(mnt / path.name / key / "scan.spec"))
                assert single.scanno() == 1, key
                copy = single[0]
                assert copy.number() == number
                assert copy.alllabels() == scan.alllabels(), (path.name, key)
                try:
                    expected = scan.data()
                except specfile.error:  # PyMca cannot read this scan's data in the original either
                    with pytest.raises(specfile.error):
                        copy.data()
                else:
                    assert np.array_equal(copy.data(), expected, equal_nan=True), (path.name, key)
                assert copy.nbmca() == scan.nbmca()
                for k in range(1, min(scan.nbmca(), 5) + 1):
                    assert np.array_equal(copy.mca(k), scan.mca(k))
                checked += 1
        assert checked > 500
