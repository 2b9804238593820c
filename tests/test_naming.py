"""One naming rule for every backend (vfs.naming): ``/`` and NUL become ``%``, names are
cut to fit NAME_MAX with their suffixes, and the mount shows exactly those names."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.edf_files import frame_block, write_edf
from vfs.limits import MAX_NAME
from vfs.naming import safe_name, safe_path


def test_safe_name_exact() -> None:
    assert safe_name("a/b") == "a%b"
    assert safe_name("a\x00b") == "a%b"
    assert safe_name("") == "_" and safe_name("", "column_3") == "column_3"
    assert safe_name("x" * 300) == "x" * 239  # NAME_MAX 255 minus 16 bytes for suffixes
    cut = safe_name("é" * 200)  # 2 bytes each: never split in the middle of one
    assert cut == "é" * 119 and len(cut.encode()) == 238
    assert len(f".{safe_name('y' * 999)}.attrs.txt~99".encode()) <= MAX_NAME
    assert safe_path("/a/b\x00c/../d") == "/a/b%c/../d"


@pytest.mark.mount
def test_every_backend_names_alike(tmp_path: Path, mount) -> None:
    src = tmp_path / "src"
    src.mkdir()
    long = "L" * 300
    with h5py.File(src / "n.h5", "w") as f:
        f[f"g/{long}"] = np.arange(4)
        f["g/alias"] = h5py.SoftLink(f"/g/{long}")
    (src / "s.spec").write_bytes(b"#F s\n#S 1 t\n#N 3\n#L a/b  c\x00d  " + b"m" * 300 + b"\n1 2 3\n4 5 6\n")
    keys = {"x/y": 7, "motor_mne": "s/z", "motor_pos": 2.5}
    write_edf(src / "e.edf", [frame_block(np.zeros((2, 3), np.uint16), keys)])
    with mount(src) as mnt:
        stem = "L" * 239
        assert sorted(os.listdir(mnt / "n.h5/g")) == sorted(["alias.npy", "alias.txt", f"{stem}.npy", f"{stem}.txt"])
        assert os.readlink(mnt / "n.h5/g/alias.npy") == f"{stem}.npy"
        assert np.load(mnt / "n.h5/g/alias.npy").tolist() == [0, 1, 2, 3]
        measurement = sorted(os.listdir(mnt / "s.spec/1.1/measurement"))
        assert measurement == sorted(f"{n}.{s}" for n in ("a%b", "c%d", "m" * 239) for s in ("npy", "txt"))
        assert np.load(mnt / "s.spec/1.1/measurement/c%d.npy").tolist() == [2, 5]
        assert np.load(mnt / "e.edf/scan_0/instrument/detector_0/others/x%y.npy").tolist() == [7]
        assert np.load(mnt / "e.edf/scan_0/instrument/positioners/s%z.npy").tolist() == [2.5]
