"""Ripple cubes (.rpl + .raw) through real mounts, against RosettaSciIO's ripple reader:
every real example file, the synthetic Bruker M6-style export, and Hypothesis-generated
header combinations (record-by x data type x byte order x offset)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REAL
from tests.mounting import mounted, require_module

pytestmark = pytest.mark.mount
SYNTHETIC = REAL.parent / "synthetic" / "maxrf"


def rsciio_read(rpl: Path) -> dict:
    ripple = require_module("rsciio.ripple")
    return ripple.file_reader(str(rpl))[0]  # type: ignore[no-any-return]


def check_against_rsciio(rpl: Path, folder: Path) -> None:
    ref = rsciio_read(rpl)
    data = np.load(folder / "data.npy", mmap_mode="r")
    assert data.shape == ref["data"].shape, rpl.name
    assert data.dtype == ref["data"].dtype, rpl.name
    assert data.tobytes() == np.ascontiguousarray(ref["data"]).tobytes(), rpl.name
    assert (folder / "header.txt").read_bytes() == rpl.read_bytes()
    info = ref["original_metadata"]
    order = {"vector": ["height", "width", "depth"], "image": ["depth", "height", "width"],
             "dont-care": ["depth", "height", "width"]}[info["record-by"]]
    dims = [d for d in order if int(info[d]) > 1]
    assert len(dims) == len(ref["axes"])
    for dim, axis in zip(dims, ref["axes"]):
        path = folder / "axes" / f"{axis['name']}.npy"
        described = any(f"{dim}-{k}" in info for k in ("scale", "origin", "units", "name"))
        described |= dim == "depth" and "ev-per-chan" in info
        assert path.exists() == described, path
        if not described:
            continue
        expected = axis["offset"] + axis["scale"] * np.arange(axis["size"])
        np.testing.assert_allclose(np.load(path), expected, rtol=1e-15, atol=0, err_msg=str(path))
        if f"{dim}-scale" in info:
            assert float(os.getxattr(path, "user.scale")) == float(axis["scale"])


def test_real_and_synthetic_ripple_files_match_rsciio(tmp_path: Path) -> None:
    rpls = sorted((REAL / "ripple").glob("*.rpl")) + sorted(SYNTHETIC.glob("*.rpl"))
    if not rpls:
        pytest.skip("no shared ripple data")
    assert len(rpls) == 41
    for source in (REAL / "ripple", SYNTHETIC):
        with mounted(source, tmp_path / source.name) as mnt:
            for rpl in sorted(source.glob("*.rpl")):
                folder = mnt / rpl.name
                assert folder.is_dir(), rpl.name
                check_against_rsciio(rpl, folder)
                raw = mnt / (rpl.stem + ".raw")  # the .raw stays the same plain file
                assert raw.is_file() and raw.read_bytes() == rpl.with_suffix(".raw").read_bytes()
            if source == SYNTHETIC:  # a spectrum and a map through mmap and .txt
                cube = np.load(mnt / "synthetic_scan.rpl" / "data.npy", mmap_mode="r")
                ref = rsciio_read(source / "synthetic_scan.rpl")["data"]
                np.testing.assert_array_equal(cube[17, 33, :], ref[17, 33, :])
                txt = mnt / "synthetic_scan.rpl" / "data.txt"  # fixed-width rows: seek to one
                width = txt.stat().st_size // (48 * 64)
                with open(txt, "rb") as fh:
                    fh.seek((17 * 64 + 33) * width)
                    line = fh.read(width).decode()
                assert line.endswith("\n") and [int(float(v)) for v in line.split()] == ref[17, 33, :].tolist()


def test_rpl_without_raw_or_too_small_raw_stays_plain(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    header = ("key\tvalue\nwidth\t4\nheight\t3\ndepth\t5\noffset\t0\ndata-length\t2\n"
              "data-type\tunsigned\nbyte-order\tlittle-endian\nrecord-by\tvector\n")
    (src / "alone.rpl").write_text(header)
    (src / "short.rpl").write_text(header)
    (src / "short.raw").write_bytes(bytes(4 * 3 * 5 * 2 - 1))  # one byte short
    outside = tmp_path / "outside.raw"  # a .raw that is a link out of the mounted folder
    outside.write_bytes(bytes(120))
    (src / "escape.rpl").write_text(header)
    (src / "escape.raw").symlink_to(outside)
    (src / "good.rpl").write_text(header)
    (src / "good.raw").write_bytes(np.arange(60, dtype="<u2").tobytes())
    with mounted(src, tmp_path / "m") as mnt:
        assert (mnt / "alone.rpl").is_file() and (mnt / "alone.rpl").read_text() == header
        assert (mnt / "short.rpl").is_file() and (mnt / "short.rpl").read_text() == header
        assert (mnt / "escape.rpl").is_file() and (mnt / "escape.rpl").read_text() == header
        assert (mnt / "good.rpl").is_dir()
        np.testing.assert_array_equal(np.load(mnt / "good.rpl" / "data.npy"), np.arange(60).reshape(3, 4, 5))
        assert not (mnt / "good.rpl" / "axes").exists()  # no axis keys in the header


def test_raw_cut_after_listing_gives_eio(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    if not SYNTHETIC.is_dir():
        pytest.skip("no synthetic data")
    shutil.copy(SYNTHETIC / "synthetic_scan.rpl", src)
    shutil.copy(SYNTHETIC / "synthetic_scan.raw", src)
    with mounted(src, tmp_path / "m") as mnt:
        npy = mnt / "synthetic_scan.rpl" / "data.npy"
        size = npy.stat().st_size
        os.truncate(src / "synthetic_scan.raw", 1000)
        with open(npy, "rb") as fh, pytest.raises(OSError) as err:
            fh.seek(size - 4096)
            fh.read(4096)
        assert err.value.errno == errno.EIO


KINDS = [("unsigned", 1), ("unsigned", 2), ("unsigned", 4), ("unsigned", 8), ("signed", 1), ("signed", 2),
         ("signed", 4), ("signed", 8), ("float", 4), ("float", 8)]
CODES = {"unsigned": "u", "signed": "i", "float": "f"}


@st.composite
def ripple_case(draw: st.DrawFn) -> tuple[str, bytes, bytes]:
    record = draw(st.sampled_from(["vector", "image", "dont-care"]))
    kind, length = draw(st.sampled_from(KINDS))
    order = "dont-care" if length == 1 else draw(st.sampled_from(["little-endian", "big-endian", "dont-care"]))
    offset = draw(st.integers(0, 70))
    # RosettaSciIO cannot read a 1 x 1 x 1 "cube" (a 0-d array): at least one side > 1
    width, height = draw(st.integers(2 if record == "dont-care" else 1, 6)), draw(st.integers(1, 6))
    depth = 1 if record == "dont-care" else draw(st.integers(2, 7))
    extra = draw(st.sampled_from(["", "depth-scale\t2.5\ndepth-origin\t-1\ndepth-units\teV\n",
                                  "width-name\tx\nwidth-scale\t0.5\nheight-origin\t3\n"]))
    header = (f";written by a test\nkey\tvalue\nwidth\t{width}\nheight\t{height}\ndepth\t{depth}\n"
              f"offset\t{offset}\ndata-length\t{length}\ndata-type\t{kind}\nbyte-order\t{order}\n"
              f"record-by\t{record}\n{extra}")
    count = width * height * depth
    byte_order = {"little-endian": "<", "big-endian": ">", "dont-care": "="}[order]
    values = draw(st.binary(min_size=count * length, max_size=count * length))
    dtype = np.dtype(f"{byte_order}{CODES[kind]}{length}")
    if kind == "float":  # keep the values finite so that they compare by value too
        values = np.nan_to_num(np.frombuffer(values, dtype)).astype(dtype).tobytes()
    return header, bytes(draw(st.binary(min_size=offset, max_size=offset))), values


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(cases=st.lists(ripple_case(), min_size=1, max_size=8))
def test_header_combinations_match_rsciio(tmp_path_factory: pytest.TempPathFactory,
                                          cases: list[tuple[str, bytes, bytes]]) -> None:
    require_module("rsciio.ripple")
    base = tmp_path_factory.mktemp("ripple")
    src = base / "src"
    src.mkdir()
    for k, (header, pad, values) in enumerate(cases):
        (src / f"c{k}.rpl").write_text(header)
        (src / f"c{k}.raw").write_bytes(pad + values)
    with mounted(src, base / "m") as mnt:
        for k in range(len(cases)):
            check_against_rsciio(src / f"c{k}.rpl", mnt / f"c{k}.rpl")
