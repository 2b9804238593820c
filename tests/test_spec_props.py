"""Property tests: generated SPEC text (random scans, labels with spaces and ``/``, MCA
blocks with continuation lines, CRLF, truncation) against the tree and its values."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_spec_parse import load, open_tree
from vfs.formats import specparse as sp
from vfs.formats import specindex as si
from vfs.nodes import Directory

WORD = st.text(alphabet="abcdefxyzIT0129_/.-", min_size=1, max_size=5).filter(lambda w: w not in (".", ".."))
LABEL = st.lists(WORD, min_size=1, max_size=3).map(" ".join)
VALUE = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64),
                  st.integers(-10**6, 10**6).map(float), st.just(float("nan")))


@dataclass
class Scan:
    number: int
    labels: list[str]
    rows: list[list[float]]
    analysers: int
    spectra: list[list[float]]  # in file order: point by point, analyser by analyser


@st.composite
def scans(draw: st.DrawFn) -> Scan:
    labels = draw(st.lists(LABEL, min_size=1, max_size=5))
    npoints = draw(st.integers(0, 5))
    rows = [[draw(VALUE) for _ in labels] for _ in range(npoints)]
    k = draw(st.integers(0, 2)) if npoints else 0
    nch = draw(st.integers(1, 40))
    spectra = [[float(draw(st.integers(0, 10**5))) for _ in range(nch)] for _ in range(npoints * k)]
    return Scan(draw(st.integers(0, 4)), labels, rows, k, spectra)


def spectrum_text(values: list[float], wrap: int) -> str:
    words = [repr(v) for v in values]
    lines = [" ".join(words[i : i + wrap]) for i in range(0, len(words), wrap)]
    return "@A " + "\\\n ".join(lines) + "\n"


def render(file_scans: list[Scan], header: bool, wrap: int) -> str:
    out = ["#F gen.spec\n#E 1700000000\n#D Tue Nov 14 22:13:20 2023\n#O0 mot one  m/2\n\n"] if header else []
    for scan in file_scans:
        out.append(f"#S {scan.number}  ascan  x 0 1 {len(scan.rows)} 1\n#P0 1.5 -2\n")
        out.append(f"#N {len(scan.labels)}\n#L {'  '.join(scan.labels)}\n")
        spectra = iter(scan.spectra)
        for row in scan.rows:
            out.append(" ".join(repr(v) for v in row) + "\n")
            for _ in range(scan.analysers):
                out.append(spectrum_text(next(spectra), wrap))
        out.append("\n")
    return "".join(out)


def check_tree(path: Path, file_scans: list[Scan]) -> None:
    root, t = open_tree(path)
    counts: dict[int, int] = {}
    keys = []
    for scan in file_scans:
        counts[scan.number] = counts.get(scan.number, 0) + 1
        keys.append(f"{scan.number}.{counts[scan.number]}")
    assert list(root.children()) == keys
    for key, scan in zip(keys, file_scans):
        measurement = t[f"{key}/measurement"]
        assert isinstance(measurement, Directory)
        names = list(measurement.children())
        seen: dict[str, int] = {}
        for j, label in enumerate(scan.labels):
            stem = label.replace("/", "%")
            seen[stem] = seen.get(stem, 0) + 1
            name = f"{stem}.npy" if seen[stem] == 1 else f"{stem}~{seen[stem]}.npy"
            assert name in names
            values = load(t[f"{key}/measurement/{name}"])
            expected = np.array([row[j] for row in scan.rows], np.float64)
            assert values.dtype == np.float64
            assert np.array_equal(values, expected, equal_nan=True)
        if scan.analysers:
            for a in range(scan.analysers):
                data = load(t[f"{key}/instrument/mca_{a}/data.npy"])
                assert data.tolist() == scan.spectra[a :: scan.analysers]
        else:
            assert not any(p.startswith(f"{key}/instrument/mca_") for p in t)
        positioners = t[f"{key}/instrument/positioners"]
        assert isinstance(positioners, Directory)
        if "mot one.npy" in positioners.children():
            assert float(load(t[f"{key}/instrument/positioners/mot one.npy"])) == 1.5
            assert float(load(t[f"{key}/instrument/positioners/m%2.npy"])) == -2


SETTINGS = settings(max_examples=int(os.environ.get("SPEC_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.lists(scans(), min_size=0, max_size=4), st.booleans(), st.booleans(), st.integers(1, 20))
def test_generated_files(file_scans: list[Scan], header: bool, crlf: bool, wrap: int) -> None:
    text = render(file_scans, header, wrap)
    if crlf:
        text = text.replace("\n", "\r\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gen.spec"
        path.write_bytes(text.encode())
        check_tree(path, file_scans)


@SETTINGS
@given(st.lists(scans(), min_size=1, max_size=3), st.booleans(), st.integers(1, 20), st.data())
def test_truncated_files_show_complete_lines_only(file_scans: list[Scan], crlf: bool, wrap: int,
                                                  data: st.DataObject) -> None:
    raw = render(file_scans, True, wrap).encode()
    if crlf:
        raw = raw.replace(b"\n", b"\r\n")
    cut = data.draw(st.integers(0, len(raw)))
    full = si.build_index(raw)
    part = si.build_index(raw[:cut])
    complete = raw[: raw.rfind(b"\n", 0, cut) + 1]
    assert part == si.build_index(complete)
    assert si.extend_index(part, raw, len(raw)) == full
    for i in part.scans():
        block = part.blocks[i]
        mine = sp.parse_scan(raw[block.offset : part.block_end(i)])
        whole = sp.parse_scan(raw[block.offset : full.block_end(i)])
        n = mine.data.shape[0]
        if n:  # what was shown never changes
            assert np.array_equal(mine.data, whole.data[:n], equal_nan=True)
        assert mine.bad_lines == []
        assert len(mine.spectra) <= len(whole.spectra)
        for (s0, e0), (s1, e1) in zip(mine.spectra, whole.spectra):
            one = sp.parse_spectrum(raw[block.offset + s0 : block.offset + e0])
            assert one.tolist() == sp.parse_spectrum(raw[block.offset + s1 : block.offset + e1])[: one.size].tolist()
