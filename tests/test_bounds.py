"""Hostile files through a real mount: what a file declares never becomes unbounded work.

The two files of the report (a SPEC scan saying ``#N 2`` over one data line of
2,500,000 values, which became 5,000,000 entries and 8.5 GB; an EDF header with
``Dim_900000000 = 1``) sit beside a gzip bomb inside an EDF frame, an HDF5 dataset of
2**60 elements and good files. Each hostile part is skipped with one log line, the
rest of every file is served, the good files read as their oracles (h5py, the arrays
written), and the mount's peak memory grows by less than 100 MB. The mount runs with
its heap capped at 2 GiB, so a regression fails here instead of exhausting the machine.
"""

from __future__ import annotations

import errno
import gzip
import os
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import MountFactory
from tests.mounting import memory_kib, mount_pid
from vfs import limits

HEAP = 2 << 30


def edf_header(keys: dict[str, object]) -> bytes:
    """An EDF header block padded to a multiple of 512 bytes."""
    body = "".join(f"{k} = {v} ;\n" for k, v in keys.items()).encode()
    size = -(-(len(body) + 4) // 512) * 512
    return b"{\n" + body + b" " * (size - len(body) - 4) + b"}\n"


def frame(data: np.ndarray, **extra: object) -> bytes:
    """One UnsignedShort frame; ``extra`` keys are added (``Size=None`` leaves Size out)."""
    raw = data.astype("<u2").tobytes()
    keys: dict[str, object] = {"HeaderID": "EH:000001:000000:000000", "Image": 1, "ByteOrder": "LowByteFirst",
                               "DataType": "UnsignedShort", "Dim_1": data.shape[1], "Dim_2": data.shape[0],
                               "Size": len(raw)}
    keys.update(extra)
    return edf_header({k: v for k, v in keys.items() if v is not None}) + raw


def zeros_gzip(n: int) -> bytes:
    """gzip of ``n`` zero bytes, made a MiB at a time (about n / 1000 bytes)."""
    enc = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    piece = bytes(1 << 20)
    out = [enc.compress(piece) for _ in range(n >> 20)]
    return b"".join(out) + enc.flush()


IMAGE = np.arange(12, dtype="<u2").reshape(3, 4)


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    wide = b" ".join([b"1"] * 2_500_000)
    (src / "huge.spec").write_bytes(
        b"#F huge.spec\n#E 1\n\n#S 1 ascan\n#N 2\n#L a  b\n" + wide + b"\n\n"
        b"#S 2 ok\n#N 2\n#L x  y\n1 2\n3 4\n\n"
        b"#S 3 mca\n#N 1\n#L t\n#@MCA 4\n#@CHANN 4 0 999999999999999 1\n1\n@A 5 6 7 8\n\n")
    (src / "dims.edf").write_bytes(frame(IMAGE, Dim_900000000=1))
    (src / "later.edf").write_bytes(frame(IMAGE) + frame(IMAGE, Dim_900000000=1))
    bomb = zeros_gzip(256 << 20)
    (src / "bomb.edf").write_bytes(frame(np.zeros((100, 100)), Compression="gzip", Size=len(bomb))[:-20000] + bomb)
    (src / "nosize.edf").write_bytes(frame(np.zeros((100, 100)), Compression="gzip", Size=None)[:-20000] + bomb)
    with h5py.File(src / "good.h5", "w") as f:
        f["data"] = np.arange(1000.0)
    with h5py.File(src / "absurd.h5", "w") as f:
        f.create_dataset("huge", shape=(1 << 40, 1 << 20), dtype="f8", chunks=(1, 1024))
        f["small"] = np.arange(5)
    return src


def unreadable(path: Path) -> int:
    """The errno reading ``path`` gives (0 when it reads)."""
    try:
        path.read_bytes()
    except OSError as exc:
        return exc.errno or -1
    return 0


def test_hostile_files_are_bounded_and_the_rest_is_served(hostile: Path, mount: MountFactory) -> None:
    with mount(hostile, data_limit=HEAP) as mnt:
        pid = mount_pid(mnt)
        base = memory_kib(pid, "VmRSS")
        names = sorted(os.listdir(mnt))
        walked = sum(len(files) + len(dirs) for _, dirs, files in os.walk(mnt))
        # SPEC: the 2,500,000-value line is no row; the labels stay, the next scans are whole
        scan1 = sorted(os.listdir(mnt / "huge.spec" / "1.1" / "measurement"))
        a = np.load(mnt / "huge.spec" / "1.1" / "measurement" / "a.npy")
        x = np.load(mnt / "huge.spec" / "2.1" / "measurement" / "x.npy")
        y = np.load(mnt / "huge.spec" / "2.1" / "measurement" / "y.npy")
        channels = np.load(mnt / "huge.spec" / "3.1" / "instrument" / "mca_0" / "channels.npy")
        spectrum = np.load(mnt / "huge.spec" / "3.1" / "instrument" / "mca_0" / "data.npy")
        # EDF: a first frame of absurd rank makes the file a plain file; a later one is EIO
        dims_plain = (mnt / "dims.edf").is_file() and (mnt / "dims.edf").read_bytes()
        frame0 = np.load(mnt / "later.edf" / "frames" / "0000.npy")
        frame1_errno = unreadable(mnt / "later.edf" / "frames" / "0001.npy")
        # the bomb with a declared size: decoded only up to the 20,000 bytes its header declares
        bomb = np.load(mnt / "bomb.edf" / "data.npy")
        nosize_errno = unreadable(mnt / "nosize.edf" / "data.npy")
        # HDF5: 2**60 elements listed, refused; the file's other dataset and the good file served
        huge_errno = unreadable(mnt / "absurd.h5" / "huge.npy")
        small = np.load(mnt / "absurd.h5" / "small.npy")
        good = np.load(mnt / "good.h5" / "data.npy", mmap_mode="r")
        good_ok = bool(np.array_equal(good, h5py.File(hostile / "good.h5")["data"][()]))
        del good
        grown = memory_kib(pid) - base
    log = (mnt.parent / f"{mnt.name}.log").read_text()
    assert names == [".vfs-stats", "absurd.h5", "bomb.edf", "dims.edf", "good.h5", "huge.spec", "later.edf",
                     "nosize.edf"]
    assert walked < 1000
    assert scan1 == ["a.npy", "a.txt", "b.npy", "b.txt"] and a.shape == (0,)
    assert x.tolist() == [1.0, 3.0] and y.tolist() == [2.0, 4.0]
    assert channels.tolist() == [0, 1, 2, 3] and spectrum.tolist() == [[5.0, 6.0, 7.0, 8.0]]
    assert dims_plain == (hostile / "dims.edf").read_bytes()
    np.testing.assert_array_equal(frame0, IMAGE)
    assert frame1_errno == errno.EIO
    np.testing.assert_array_equal(bomb, np.zeros((100, 100), "<u2"))
    assert nosize_errno == errno.EIO
    assert huge_errno == errno.EIO
    assert small.tolist() == [0, 1, 2, 3, 4] and good_ok
    assert grown < 100 << 10, f"the mount grew by {grown >> 10} MiB"
    # one log line per refusal, naming the file and the reason
    assert log.count("huge.spec: scan 1.1") == 1
    assert log.count("dims.edf") == 1 and f"above {limits.MAX_RANK}" in log
    assert log.count("later.edf: frame 1") == 1
    assert log.count("nosize.edf: frame 0") == 1 and "decompression bomb" in log
    assert log.count("absurd.h5:/huge") == 1 and f"outside 0..{limits.MAX_ELEMENTS}" in log


def test_a_gzip_bomb_never_decodes_past_the_declared_size() -> None:
    """The decoder stops at the declared size whatever the stream holds."""
    from vfs.formats.edfparse import compressed_length, decompress

    blob = gzip.compress(bytes(50 << 20), 1)
    assert len(decompress("gzip", blob, 20000)) == 20000
    assert compressed_length("gzip", lambda o, n: blob[o : o + n], 0, 20000) is None
    small = gzip.compress(b"x" * 1000)
    assert compressed_length("gzip", lambda o, n: (small + b"tail")[o : o + n], 0, 1000) == len(small)


def test_a_slow_file_never_holds_up_its_siblings(tmp_path: Path, mount: MountFactory) -> None:
    """A source file whose every read takes 60 s (a slow disk) beside a good one: the
    folder lists within the probe deadline, and the good file is served meanwhile."""
    import subprocess
    import sys
    import threading

    from tests.mounting import require_fuse, unmount

    require_fuse()
    real = tmp_path / "real"
    real.mkdir()
    text = b"#F x\n#S 1 ascan\n#N 2\n#L x  y\n1 2\n3 4\n"
    (real / "good.spec").write_bytes(text)
    (real / "slow.spec").write_bytes(text)
    slow = tmp_path / "slow"
    slow.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "tests.slowfs", str(real), str(slow), "60"],
                            cwd=Path(__file__).resolve().parents[1])
    try:
        for _ in range(200):
            if os.path.ismount(slow):
                break
            time.sleep(0.05)
        with mount(slow) as mnt:
            seen: list[object] = []

            def look() -> None:
                seen.append(sorted(os.listdir(mnt)))
                seen.append(np.load(mnt / "good.spec" / "1.1" / "measurement" / "y.npy").tolist())

            worker = threading.Thread(target=look, daemon=True)
            worker.start()
            worker.join(15)  # the slow file's first read alone takes 60 s
            assert seen == [[".vfs-stats", "good.spec", "slow.spec"], [2.0, 4.0]]
            log = (mnt.parent / f"{mnt.name}.log").read_text()
        assert log.count("slow.spec: first bytes not read after") == 1
    finally:
        unmount(slow)
        proc.kill()
        proc.wait()


def test_scans_beyond_the_limit_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from vfs.formats import specindex as si

    monkeypatch.setattr(si, "MAX_SCANS", 3)
    text = b"#F x\n" + b"".join(b"#S %d s\n1\n" % i for i in range(1, 6))
    index = si.build_index(text)
    assert [b.key for b in index.blocks if b.kind == "scan"] == ["1.1", "2.1", "3.1"]
    assert index.dropped and index.end == text.index(b"#S 4")


def test_frames_beyond_the_limit_are_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vfs.formats import edfparse
    from vfs.formats.edfstream import PlainStream

    monkeypatch.setattr(edfparse, "MAX_FRAMES", 2)
    path = tmp_path / "four.edf"
    path.write_bytes(frame(IMAGE) * 4)
    index = edfparse.EdfIndex(PlainStream(str(path), "x"), str(path), "x")
    assert index.count() == 2 and "more than 2 frames" in (index.stop_reason or "")

