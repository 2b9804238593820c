"""The zip central directory reader against zipfile: names, methods, sizes, offsets,
zip64 entries, cp437 names, duplicates, and files that are not zips."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from vfs.errors import Unreadable
from vfs.formats.zipindex import ZipIndex


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_members_match_zipfile(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("zarr.json", "{}")
        zf.writestr(zipfile.ZipInfo("d/deflated"), b"x" * 5000, compress_type=zipfile.ZIP_DEFLATED)
        with zf.open("big/zip64", "w", force_zip64=True) as fh:
            fh.write(b"y" * 100)
        info = zipfile.ZipInfo("caf\xe9/.zarray")  # non-ASCII name: zipfile flags it UTF-8
        zf.writestr(info, "{}")
        zf.writestr("d/deflated", b"later wins")
    index = ZipIndex(str(path))
    with zipfile.ZipFile(path) as zf:
        expected = {i.filename: (i.compress_type, i.compress_size, i.file_size, i.header_offset)
                    for i in zf.infolist()}
    assert len(index) == len(expected) == 4
    for name, (method, csize, size, offset) in expected.items():
        member = index.get(name)
        assert member is not None and name in index
        assert (member.method, member.compressed, member.size, member.header_offset) == (method, csize, size, offset)
    assert sorted(index.names_ending((".zarray", "zarr.json"))) == ["caf\xe9/.zarray", "zarr.json"]
    assert index.get("missing") is None


def test_not_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(Unreadable):
        ZipIndex(str(path))
