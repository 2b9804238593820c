"""The SPEC parser and tree on small texts written here, one quirk at a time."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from vfs.context import Context
from vfs.errors import Unreadable
from vfs.formats import specparse as sp
from vfs.formats import specindex as si
from vfs.formats.sniff import is_spec
from vfs.formats.spec import open_folder, probe
from vfs.nodes import Directory, File, Node, Symlink

HEADER = b"#F test.spec\n#E 1455180875\n#D Thu Feb 11 09:54:35 2016\n#O0 m one  m/two  m3\n\n"


def scan_text(number: int, rows: list[list[float]], labels: str = "a  b", extra: bytes = b"") -> bytes:
    body = "".join(" ".join(repr(v) for v in row) + "\n" for row in rows).encode()
    return (f"#S {number}  ascan  m3 0 1  2 0.1\n#D Thu Feb 11 09:55:20 2016\n#P0 1.5 -2 3e-3\n"
            f"#N {len(labels.split('  '))}\n#L {labels}\n").encode() + extra + body + b"\n"


def tree(node: Directory, path: str = "") -> dict[str, Node]:
    out: dict[str, Node] = {}
    for name, child in node.children().items():
        p = f"{path}/{name}" if path else name
        out[p] = child
        if isinstance(child, Directory):
            out.update(tree(child, p))
    return out


def load(node: Node) -> np.ndarray:
    assert isinstance(node, File)
    return np.load(io.BytesIO(node.read(0, node.size)))


def text(node: Node) -> str:
    assert isinstance(node, File)
    return node.read(0, node.size).decode("utf-8", "surrogateescape")


def open_tree(path: Path) -> tuple[Directory, dict[str, Node]]:
    root = open_folder(str(path), os.stat(path), Context(root=str(path.parent)), 7)
    return root, tree(root)


def write(tmp_path: Path, content: bytes, name: str = "f.spec") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


# -- detection ---------------------------------------------------------------------------


@pytest.mark.parametrize("head,expected", [
    (b"#F x\n#E 1\n", True),
    (b"\n\n#S 1 ascan\n#L a\n1\n", True),
    (b"#E 918630612\n#D Wed Feb 10 01:10:12 1999\n", True),
    (b"\xef\xbb\xbf#F x\r\n#E 1\r\n", True),
    (b"# This is the simplest file format\n# column\n1\n", False),
    (b"$SPEC_ID:\n\n$DATA:\n", False),
    (b"#!/bin/sh\necho\n", False),
    (b"#include <stdio.h>\n", False),
    (b"#Sample notes\nfoo\n", False),
    (b"", False),
])
def test_is_spec(head: bytes, expected: bool) -> None:
    assert is_spec("x", head) is expected


def test_probe_refuses_headerless_text(tmp_path: Path) -> None:
    probe(str(write(tmp_path, HEADER)), Context(root=str(tmp_path)))
    with pytest.raises(ValueError):
        probe(str(write(tmp_path, b"#D today\n#C a comment\n", "c.txt")), Context(root=str(tmp_path)))


# -- index -------------------------------------------------------------------------------


def test_keys_count_repeats_in_file_order() -> None:
    data = HEADER + scan_text(2, [[1, 2]]) + scan_text(1, [[1, 2]]) + scan_text(2, [[1, 2]]) + scan_text(0, [[3, 4]])
    index = si.build_index(data)
    assert [index.blocks[i].key for i in index.scans()] == ["2.1", "1.1", "2.2", "0.1"]


def test_index_ignores_a_half_written_last_line() -> None:
    data = HEADER + scan_text(1, [[1, 2]]) + b"#S 2 asc"
    index = si.build_index(data)
    assert index.end == len(data) - len(b"#S 2 asc")
    assert [index.blocks[i].key for i in index.scans()] == ["1.1"]


def test_e_line_outside_a_header_starts_a_new_header() -> None:
    data = HEADER + scan_text(1, [[1, 2]]) + b"#E 918688327\n#O0 q1  q2  q3\n\n" + scan_text(2, [[1, 2]])
    index = si.build_index(data)
    kinds = [b.kind for b in index.blocks]
    assert kinds == ["header", "scan", "header", "scan"]
    assert index.blocks[3].header == 2 and index.blocks[1].header == 0


def test_extend_index_matches_a_fresh_index() -> None:
    data = HEADER + scan_text(1, [[1, 2], [3, 4]]) + scan_text(1, [[5, 6]]) + HEADER + scan_text(3, [[7, 8]])
    for cut in range(0, len(data), 7):
        for cut2 in (cut + 5, cut + 60, len(data)):
            first = si.build_index(data, cut)
            end = min(cut2, len(data))
            fresh = si.build_index(data, end)
            assert si.extend_index(first, data, end) == fresh
            restart = si.restart_offset(first)
            if restart:  # only the bytes from the last block on are needed
                base = restart - restart % 5
                assert si.extend_index(first, data[base:], end, base) == fresh


# -- one scan ----------------------------------------------------------------------------


def test_values_are_float64_and_exact() -> None:
    rows = [[0.1, 1e-300], [2.2250738585072014e-308, 1.7976931348623157e308], [123456789.123456789, -0.0]]
    scan = sp.parse_scan(scan_text(1, rows))
    assert scan.data.dtype == np.float64
    assert scan.data.tolist() == rows


def test_malformed_lines_are_skipped_and_counted() -> None:
    block = scan_text(1, [[1, 2], [3, 4], [7, 8]])
    block = block.replace(b"3 4\n", b"3 4\n5\n24.4121 48916#C Scan aborted after 2 points.\n")
    scan = sp.parse_scan(block)
    assert scan.data.tolist() == [[1, 2], [3, 4], [7, 8]]
    assert scan.bad_lines == [2, 3]


def test_comments_nan_and_none_in_the_data_block() -> None:
    block = scan_text(1, [[1.0, 2.0]]).replace(b"1.0 2.0\n", b"1.0 2.0\n#C a comment\nnan 3\n4 None\n")
    scan = sp.parse_scan(block)
    assert np.array_equal(scan.data, [[1, 2], [np.nan, 3], [4, np.nan]], equal_nan=True)
    assert scan.bad_lines == []


def test_labels_split_on_two_spaces_and_single_spaced_labels_confirmed_by_n() -> None:
    assert sp.parse_scan(scan_text(1, [[1, 2, 3]], "first col  sec/ond  3rd")).labels == ["first col", "sec/ond", "3rd"]
    single = scan_text(1, [[1, 2, 3]], "a b c").replace(b"#N 1\n", b"#N 3\n")
    assert sp.parse_scan(single).labels == ["a", "b", "c"]


def test_crlf_is_read_like_lf() -> None:
    data = HEADER + scan_text(1, [[1, 2], [3, 4]]) + scan_text(2, [[5, 6]])
    crlf = data.replace(b"\n", b"\r\n")
    a, b = si.build_index(data), si.build_index(crlf)
    assert [x.key for x in a.blocks] == [x.key for x in b.blocks]
    blk = b.blocks[1]
    scan = sp.parse_scan(crlf[blk.offset : b.block_end(1)], crlf[: b.blocks[1].offset])
    assert scan.labels == ["a", "b"] and scan.data.tolist() == [[1, 2], [3, 4]]
    assert scan.motors == [("m one", 1.5), ("m/two", -2.0), ("m3", 0.003)]


def test_mca_interleaved_with_continuation_lines() -> None:
    extra = b"#@MCA %16C\n#@CHANN 3 0 2 1\n#@CALIB 1 2 3 mca1\n"
    block = scan_text(1, [[1, 2], [3, 4]], extra=extra)
    block = block.replace(b"1 2\n", b"1 2\n@A 0 1\\\n 2\n@A 10 11 12\n").replace(b"3 4\n", b"3 4\n@A 3 4 5\n@A 13 14 15\n")
    scan = sp.parse_scan(block)
    assert scan.analysers == 2 and len(scan.spectra) == 4
    spectra = [sp.parse_spectrum(block[s:e]).tolist() for s, e in scan.spectra]
    assert spectra == [[0, 1, 2], [10, 11, 12], [3, 4, 5], [13, 14, 15]]
    assert scan.data.tolist() == [[1, 2], [3, 4]]
    assert sp.numbers(scan.mca_header(b"CALIB")[0], 3) == [1, 2, 3]


def test_non_ascii_names_are_kept(tmp_path: Path) -> None:
    data = HEADER.replace(b"m3", b"\xe9t\xe9") + scan_text(1, [[1, 2]], "x  y")
    data = data.replace(b"#L x  y", "#L temp °C  b".encode() + b"\xffx").replace(b"#D", b"#C caf\xe9\n#D", 1)
    _, t = open_tree(write(tmp_path, data))
    names = {os.path.basename(p) for p in t}
    assert {"temp °C.npy", os.fsdecode(b"b\xffx.npy"), os.fsdecode(b"\xe9t\xe9.npy")} <= names
    assert "caf" in text(t["1.1/instrument/specfile/file_header.txt"])


# -- the tree ------------------------------------------------------------------------------


SILX_LIKE = HEADER + scan_text(1, [[1, 2, 10], [3, 4, 20]], "a  m3  I/I0") + (
    b"#S 1 again\n#D Sat 2015/03/14 03:53:50\n#G1 3.25 3.25 5.2 90 90 120 0 0 0\n#G3 1 0 0 0 1 0 0 0 1\n"
    b"#@MCADEV 1\n#@CHANN 3 0 2 1\n#@CALIB 1 2 3\n#@CTIME 1 2 3\n#N 2\n#L x  y\n"
    b"1 2\n@A 0 1 2\n3 4\n@A 3.1 4 5\n"
)


def test_tree_follows_silx(tmp_path: Path) -> None:
    root, t = open_tree(write(tmp_path, SILX_LIKE))
    assert list(root.children()) == ["1.1", "1.2"]
    assert list(t["1.1"].children()) == [  # type: ignore[attr-defined]
        "title.txt", "start_time.txt", "instrument", "measurement", "data.txt", "scan.spec"]
    assert text(t["1.1/title.txt"]) == "ascan  m3 0 1  2 0.1\n"
    assert text(t["1.1/start_time.txt"]) == "2016-02-11T09:55:20\n"
    assert text(t["1.2/start_time.txt"]) == "2015-03-14T03:53:50\n"
    assert load(t["1.1/measurement/I%I0.npy"]).tolist() == [10, 20]
    assert text(t["1.1/measurement/a.txt"]) == "1.0\n3.0\n"
    # a motor that is also a column is that column; the others are #P values
    assert load(t["1.1/instrument/positioners/m3.npy"]).tolist() == [2, 4]
    assert load(t["1.1/instrument/positioners/m one.npy"]) == 1.5
    assert load(t["1.1/instrument/positioners/m%two.npy"]) == -2
    assert "#L a  m3  I/I0" in text(t["1.1/instrument/specfile/scan_header.txt"])
    assert text(t["1.1/instrument/specfile/file_header.txt"]).startswith("#F test.spec\n#E 1455180875\n")
    mca = "1.2/instrument/mca_0"
    assert load(t[f"{mca}/data.npy"]).tolist() == [[0, 1, 2], [3.1, 4, 5]]
    assert load(t[f"{mca}/calibration.npy"]).tolist() == [1, 2, 3]
    assert load(t[f"{mca}/channels.npy"]).tolist() == [0, 1, 2]
    assert [float(load(t[f"{mca}/{n}.npy"])) for n in ("preset_time", "live_time", "elapsed_time")] == [1, 2, 3]
    link = t["1.2/measurement/mca_0/data.npy"]
    assert isinstance(link, Symlink) and link.target == "../../instrument/mca_0/data.npy"
    assert load(t["1.2/sample/ub_matrix.npy"]).shape == (1, 3, 3)
    assert load(t["1.2/sample/unit_cell_abc.npy"]).tolist() == [3.25, 3.25, 5.2]
    lines = text(t["1.1/data.txt"]).splitlines()
    assert lines[0] == "#L a  m3  I/I0" and lines[1:] == ["1.0 2.0 10.0", "3.0 4.0 20.0"]


def test_duplicate_labels_are_kept_apart(tmp_path: Path) -> None:
    _, t = open_tree(write(tmp_path, HEADER + scan_text(1, [[1, 2, 3]], "I0  x  I0")))
    assert load(t["1.1/measurement/I0.npy"]).tolist() == [1]
    assert load(t["1.1/measurement/I0~2.npy"]).tolist() == [3]


def test_unlabelled_columns_and_empty_scans(tmp_path: Path) -> None:
    data = HEADER + scan_text(1, [[1, 2, 3]], "only one") + scan_text(2, [], "a  b")
    _, t = open_tree(write(tmp_path, data))
    assert load(t["1.1/measurement/only one.npy"]).tolist() == [1]
    assert load(t["1.1/measurement/column_2.npy"]).tolist() == [3]
    assert load(t["2.1/measurement/a.npy"]).shape == (0,)


def test_inode_numbers_are_stable(tmp_path: Path) -> None:
    path = write(tmp_path, SILX_LIKE)
    _, a = open_tree(path)
    _, b = open_tree(path)
    assert {p: n.ino for p, n in a.items()} == {p: n.ino for p, n in b.items()}
    assert len({n.ino for n in a.values()}) == len(a)


def test_truncated_file_gives_eio_not_other_bytes(tmp_path: Path) -> None:
    path = write(tmp_path, SILX_LIKE)
    _, t = open_tree(path)
    spec = t["1.2/scan.spec"]
    assert isinstance(spec, File)
    root = open_folder(str(path), os.stat(path), Context(root=str(tmp_path)), 7)
    with open(path, "r+b") as fh:
        fh.truncate(len(HEADER) + 10)
    with pytest.raises(Unreadable):
        spec.read(0, spec.size)
    second = root.children()["1.2"]
    assert isinstance(second, Directory)
    with pytest.raises(Unreadable):
        second.children()
    assert root.refresh(os.stat(path)) is False  # type: ignore[attr-defined]


def test_refresh_follows_appends_and_keeps_old_scans(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + scan_text(1, [[1, 2]]))
    root, _ = open_tree(path)
    first = root.children()["1.1"]
    with open(path, "ab") as fh:
        fh.write(scan_text(2, [[3, 4]]) + b"#S 3 partial")
    assert root.refresh(os.stat(path)) is True  # type: ignore[attr-defined]
    kids: Mapping[str, Node] = root.children()
    assert list(kids) == ["1.1", "2.1"] and kids["1.1"] is first
