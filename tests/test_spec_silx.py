"""Differential tests: every real SPEC file, our tree against ``silx.io.specfile.SpecFile``.

silx is a test-only dependency. Where silx is wrong we say how, and check our answer
against the file's own text instead:

* silx reads ``nan`` and other words in data lines (``None``) as 0; we give NaN.
* silx keeps the ``\\r`` of CRLF files at the end of the last label and motor name,
  and reads a motor named ``\\r`` at position 0 from a ``#O`` line ending in blanks.
* silx ignores ``#N`` when a ``#L`` line is single-spaced (user6idd.dat scan 2): one
  label for 25 columns. We split on single spaces when that gives ``#N`` labels.
* silx pairs ``#O`` names with ``#P`` values across lines, and takes a new header only
  at ``#F``: where its counts disagree (lmn40.spe after its second ``#E`` header,
  user6idd.dat's single-spaced ``#O`` lines, scans with no ``#P``) its positions are
  wrong or infinite. There we check ours against positions read off the files by
  hand (``test_motors_where_silx_is_wrong``), and the names silx lists that we do not
  are an exact table (``SILX_ONLY_POSITIONERS``).
* silx drops the space of a line's last motor name when one letter follows it
  (issue109_data.txt: ``Cryo X`` becomes ``CryoX``).
* silx cannot read issue109_data.txt scan 11.1's MCA header (``#@CALIB ... mca1``).
* silx's HDF5-like view (spech5) refuses 33id_spec.dat (spectra not a multiple of
  points); ``SpecFile`` still serves the spectra, and we compare with those.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest

from tests.mounting import require_module
from tests.test_spec_parse import load, open_tree, text
from vfs.formats import specparse as sp
from vfs.formats import specindex as si
from vfs.formats.sniff import is_spec, read_head
from vfs.nodes import Directory, Node

silx_specfile = require_module("silx.io.specfile")
NOT_SPEC = {"Steel.spe", "XRFSpectrum.mca"}


def spec_files(real_data: Path) -> list[Path]:
    folder = real_data / "spec"
    return [p for p in sorted(folder.iterdir()) if p.is_file() and p.name not in NOT_SPEC and p.suffix != ".md"]


def real_spec_names() -> list[str]:
    folder = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "spec"
    if not folder.is_dir():
        return ["(no real data)"]
    return [p.name for p in sorted(folder.iterdir()) if p.is_file() and p.name not in NOT_SPEC and p.suffix != ".md"]


def test_detection_by_content(real_data: Path) -> None:
    for path in sorted((real_data / "spec").iterdir()):
        if path.suffix == ".md":
            continue
        assert is_spec(str(path), read_head(str(path))) is (path.name not in NOT_SPEC), path.name


@functools.lru_cache(maxsize=4)
def scan_blocks(path: Path) -> dict[str, bytes]:
    data = path.read_bytes()
    index = si.build_index(data)
    return {index.blocks[i].key: data[index.blocks[i].offset : index.block_end(i)] for i in index.scans()}


def block_text(path: Path, key: str) -> bytes:
    return scan_blocks(path)[key]


def positioner(folder: dict[str, Node], key: str, name: str) -> float | str | np.ndarray:
    stem = sp.decode(name.encode("utf-8", "surrogateescape")).replace("/", "%")
    base = f"{key}/instrument/positioners/{stem}"
    if f"{base}.npy" in folder:
        value = load(folder[f"{base}.npy"])
        return value if value.ndim else float(value)
    return text(folder[f"{base}.txt"]).rstrip("\n")


def check_columns(path: Path, key: str, scan: object, t: dict[str, Node], labels: list[str]) -> None:
    data = np.asarray(scan.data).T  # type: ignore[attr-defined]
    if data.size == 0:
        for label in labels:
            stem = label.replace("/", "%")
            assert load(t[f"{key}/measurement/{stem}.npy"]).size == 0
        return
    block = block_text(path, key)
    seen: set[str] = set()
    for j, label in enumerate(labels[: data.shape[1]]):
        stem = label.replace("/", "%")
        if stem in seen:
            continue  # duplicates: silx serves the first column under the name
        seen.add(stem)
        ours = load(t[f"{key}/measurement/{stem}.npy"])
        theirs = data[:, j]
        assert ours.dtype == np.float64 and ours.shape == theirs.shape, (key, label)
        differ = ~((ours == theirs) | (np.isnan(ours) & np.isnan(theirs)))
        if differ.any():  # silx reads nan and words as 0; we give NaN
            assert np.isnan(ours[differ]).all() and (theirs[differ] == 0).all(), (key, label)
            assert re.search(rb"(?i)\bnan\b|\bNone\b", block), (key, label)


@pytest.mark.parametrize("name", real_spec_names())
def test_file_against_silx(real_data: Path, name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    path = real_data / "spec" / name
    sf = silx_specfile.SpecFile(str(path))
    root, t = open_tree(path)
    assert list(root.children()) == sf.keys()
    crlf = b"\r\n" in path.read_bytes()[:4096]
    for key in sf.keys():
        scan = sf[key]
        assert isinstance(t[key], Directory)
        # labels
        ours_labels = [n[: -len(".npy")] for n in t[f"{key}/measurement"].children() if n.endswith(".npy")]  # type: ignore[attr-defined]
        labels = [lb.rstrip("\r") if crlf else lb for lb in scan.labels]
        n_decl = sp.numbers(sp.header_value(scan.scan_header and [ln.encode() for ln in scan.scan_header], b"N") or b"", 1)
        if len(labels) == 1 and n_decl and n_decl[0] > 1 and len(labels[0].split()) == n_decl[0]:
            labels = labels[0].split()  # a single-spaced #L line that #N confirms (silx: one label)
        for label in dict.fromkeys(labels):
            assert label.replace("/", "%") in ours_labels, (key, label)
        check_columns(path, key, scan, t, labels)
        # motors: ours against silx, except in the files where silx is wrong (checked
        # against values read off the file in test_motors_where_silx_is_wrong)
        if path.name not in SILX_WRONG_MOTORS:
            check_motors(key, scan, t, labels, crlf)
        check_mca(path, key, scan, t)


#: files whose #O/#P pairing silx gets wrong (module docstring)
SILX_WRONG_MOTORS = {"lmn40.spe", "user6idd.dat", "silx_test_spech5_sftext.dat", "data_reduction_example1_out.spec"}


def check_motors(key: str, scan: object, t: dict[str, Node], labels: list[str], crlf: bool) -> None:
    """Every motor of silx's scan has our value, and we have no motor silx lacks."""
    names = [n.rstrip("\r") if crlf else n for n in scan.motor_names]  # type: ignore[attr-defined]
    positions = scan.motor_positions  # type: ignore[attr-defined]
    assert len(names) == len(positions), key
    pairs = [(n, v) for n, v in zip(names, positions) if n.strip()]  # silx's "\r" and "#O0 " motors are none
    folder = f"{key}/instrument/positioners/"
    ours = {p[len(folder):].rpartition(".")[0] for p in t if p.startswith(folder)}
    spaced = {n.replace(" ", ""): n for n in ours}  # silx drops the space of a last name "Cryo X"
    first: dict[str, float] = {}
    for name_, number in pairs:
        name_ = name_ if name_.replace("/", "%") in ours else spaced.get(name_, name_)
        first.setdefault(name_, number)
    assert ours == {n.replace("/", "%") for n in first}, key
    for name_, number in first.items():
        value = positioner(t, key, name_)
        if isinstance(value, np.ndarray):  # a motor that is also a column is that column
            assert name_ in labels and value.size, (key, name_)
        else:
            assert value == number, (key, name_, value, number)


def check_mca(path: Path, key: str, scan: object, t: dict[str, Node]) -> None:
    instrument = t[f"{key}/instrument"]
    assert isinstance(instrument, Directory)
    folders = [f"{key}/instrument/{n}" for n in instrument.children() if re.fullmatch(r"mca_\d+", n)]
    try:
        mca = scan.mca  # type: ignore[attr-defined]
    except ValueError:  # silx fails on "#@CALIB a b c mca1" (issue109 scan 11.1): read the text
        block = block_text(path, key)
        assert bool(folders) == bool(re.search(rb"(?m)^@", block))
        line = re.search(rb"#@CALIB ([^\n]*)", block)
        for folder in folders:
            assert line and load(t[f"{folder}/calibration.npy"]).tolist() == sp.numbers(line.group(1), 3)
        return
    n = len(mca)
    if not n:
        assert not folders
        return
    k = len(folders)
    assert k >= 1
    for j in range(n):
        a, row = j % k, j // k
        data = load(t[f"{key}/instrument/mca_{a}/data.npy"])
        if row < data.shape[0]:
            spectrum = mca[j]
            assert data[row, : spectrum.size].tolist() == spectrum.tolist(), (key, j)
    for a in range(k):
        calib = load(t[f"{key}/instrument/mca_{a}/calibration.npy"]).tolist()
        try:
            theirs = mca.calibration[0 if len(mca.channels) == 1 else a]
        except (ValueError, AttributeError):
            theirs = None
        if theirs is not None:
            assert calib == theirs
        else:  # silx fails on "#@CALIB a b c mca1": the three numbers are the calibration
            line = re.search(rb"#@CALIB ([^\n]*)", block_text(path, key))
            assert line and calib == sp.numbers(line.group(1), 3)
        channels = load(t[f"{key}/instrument/mca_{a}/channels.npy"])
        nch = load(t[f"{key}/instrument/mca_{a}/data.npy"]).shape[1]
        raw = mca.channels[0 if len(mca.channels) == 1 else a]
        assert channels.shape == (nch,)
        if len(raw) >= nch:
            assert channels.tolist() == raw[:nch]


def test_paths_are_silx_paths(real_data: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Every dataset path of silx's HDF5-like view is a file in our tree (``.npy``/``.txt``)."""
    spech5 = require_module("silx.io.spech5")
    caplog.set_level(logging.ERROR)
    checked = 0
    missing: dict[str, set[str]] = {}
    for path in spec_files(real_data):
        try:
            h5 = spech5.SpecH5(str(path))
        except (AssertionError, ValueError):
            continue  # 33id_spec.dat and issue109_data.txt: silx cannot build its view
        _, t = open_tree(path)
        crlf = b"\r\n" in path.read_bytes()[:4096]
        for key in h5:
            for group in ("measurement", "instrument/positioners", "instrument/specfile", "sample"):
                if f"{key}/{group}" not in h5:
                    continue
                for name in h5[f"{key}/{group}"]:
                    if name.startswith("mca_") or not name:
                        continue
                    clean = name.rstrip("\r") if crlf else name
                    stem = f"{key}/{group}/{clean}"
                    found = f"{stem}.npy" in t or f"{stem}.txt" in t
                    if not found and group == "measurement":  # a single-spaced #L that #N confirms
                        found = all(f"{key}/{group}/{w}.npy" in t for w in clean.split())
                    if not found:
                        missing.setdefault(path.name, set()).add(clean)
                    checked += found
            for name in ("title", "start_time"):
                assert f"{key}/{name}.txt" in t
    assert checked > 1000
    assert missing == SILX_ONLY_POSITIONERS


#: silx positioners we do not have, and why (module docstring; the values we give instead
#: are checked in test_motors_where_silx_is_wrong)
SILX_ONLY_POSITIONERS = {
    # scans after the second #E header: silx keeps the first header's names
    "lmn40.spe": {"Chi", "Dia_Th", "Diam X", "Diam Y", "Kohzu_Y1", "Kohzu_Z2", "Kohzu_th", "Slit X", "Slit Y",
                  "Theta", "sample x", "sample y"},
    # scans without #P: silx lists the header's names anyway
    "silx_test_spech5_sftext.dat": {"MRTSlit DOWN", "MRTSlit UP", "Pslit HGap", "Sslit1 HOff", "Sslit1 VGap",
                                    "Sslit1 VOff"},
    # a #O line ending in blanks: silx reads a motor named "\r" ("" once CRLF is stripped)
    "twoc.dat": {""},
    # single-spaced #O lines: silx takes each line as one name
    "user6idd.dat": {"Delta Eta Chi Phi Nu Mu tt_y tt_z", "m1_om m1_chi m1_phi m2_om m2_chi m2_phi m1_filter mot43",
                     "m1_bend m2_bend m1_x m1_y m2_z xs zs ys", "tta oma chia phia xm ym xd yd",
                     "sl1_t sl1_b sl1_o sl1_i sl2_t sl2_b sl2_o sl2_i",
                     "sl4_t sl4_b sl4_o sl4_i sl5_t sl5_b sl5_o sl5_i",
                     "sl3_t sl3_b sl3_o sl3_i sl3_r dummy aux_y aux_x_base", "aux_th aux_x x_detector"},
}


def test_motors_where_silx_is_wrong(real_data: Path) -> None:
    """Positions read off the files' #O/#P lines by hand, where silx's pairing fails."""
    spec = real_data / "spec"
    expected: dict[tuple[str, str], dict[str, float | str]] = {
        ("lmn40.spe", "8.1"): {"theta": 11.059251, "chi": 0.0, "DCM Z2": 125.00001, "dslit top": 3.3262499,
                               "samplez": 0.20000001, "Wheel": -2.05},  # header of line 386
        ("user6idd.dat", "1.1"): {"Delta": 0.0, "Chi": 90.0, "Phi": -3.0, "tt_z": 700.0, "m1_om": 2.162381,
                                  "m1_filter": 86.365625, "m1_y": 4.6500032, "sl3_r": 0.0, "aux_x_base": -21.95,
                                  "aux_x": 21.74875, "x_detector": 0.0},
        ("silx_test_spech5_sftext.dat", "1.1"): {"Pslit HGap": 180.005, "MRTSlit DOWN": 0.87125,
                                                 "Sslit1 VGap": 12.238283},
        ("data_reduction_example1_out.spec", "0.1"): {
            "y_imin": 65.0, "scntype": "elastic", "label": "T1", "fwhm": 2.7276098908553585,
            "norm": "(y_signal/y_monitor)/y_seconds", "position": 7496.2165220915995},
    }
    for (name, key), motors in expected.items():
        _, t = open_tree(spec / name)
        for motor, value in motors.items():
            assert positioner(t, key, motor) == value, (name, key, motor)
    _, t = open_tree(spec / "silx_test_spech5_sftext.dat")
    assert not t["1.2/instrument/positioners"].children()  # type: ignore[attr-defined]  # no #P: no motors


def test_start_time_and_title(real_data: Path) -> None:
    _, t = open_tree(real_data / "spec" / "silx_test_spech5_sftext.dat")
    assert text(t["25.1/start_time.txt"]) == "2015-03-14T03:53:50\n"
    assert text(t["1.1/title.txt"]) == "ascan  ss1vo -4.55687 -0.556875  40 0.2\n"
    _, t = open_tree(real_data / "spec" / "spec_from_spock.spc")
    assert text(t["1.1/start_time.txt"]) == "2017-09-15T09:39:10Z\n"  # silx leaves the epoch


def test_quirky_files(real_data: Path) -> None:
    spec = real_data / "spec"
    _, t = open_tree(spec / "CdSe")  # aborted scan with malformed lines: still listed
    assert load(t["92.1/measurement/HerixE.npy"]).shape == (19,)
    assert t["92.1"].xattrs()["user.skipped_lines"] == b"2"
    _, t = open_tree(spec / "issue109_data.txt")  # a 6000-column row, a comment in the data
    widths = [load(n).shape for p, n in t.items() if p.startswith("25.1/measurement/") and p.endswith(".npy")]
    assert widths and all(w == widths[0] for w in widths)
    assert load(t["11.1/measurement/Energy.npy"]).shape == (61,)
    _, t = open_tree(spec / "data_reduction_example1_out.spec")  # scan 0, words in #P
    assert text(t["0.1/instrument/positioners/scntype.txt"]) == "elastic\n"
    assert float(load(t["0.1/instrument/positioners/y_imin.npy"])) == 65
    _, t = open_tree(spec / "33bm_spec.dat")  # a 10,201-point mesh
    assert max(load(n).shape[0] for p, n in t.items() if p.endswith("measurement/H.npy")) == 10201
    _, t = open_tree(spec / "33id_spec.dat")  # @A spectra continued with backslashes
    assert load(t["26.1/instrument/mca_0/data.npy"]).shape == (124, 91)
    _, t = open_tree(spec / "user6idd.dat")
    assert float(load(t["2.1/instrument/positioners/Chi.npy"])) == 90
    assert os.path.basename(next(iter(p for p in t if p.startswith("2.1/measurement/")))) == "dummy.npy"
