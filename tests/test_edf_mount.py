"""EDF files through a real FUSE mount: the real files against fabio frame by frame,
generated stacks (uniform, mixed, gzip'ed, 20,000 frames), renderings read by fabio and
numpy, xattrs, and other image formats with and without ``--formats fabio``."""

from __future__ import annotations

import errno
import json
import os
import random
from pathlib import Path

import fabio
import numpy as np
import pytest

from tests.edf_files import frame_block, sample, write_edf
from tests.mounting import stats

pytestmark = pytest.mark.mount


def fabio_frames(path: Path) -> list[tuple[np.ndarray, dict[str, str]]]:
    with fabio.open(str(path)) as img:
        frames = [img] if img.nframes == 1 else [img.getframe(k) for k in range(img.nframes)]
        return [(np.array(f.data), dict(f.header)) for f in frames]


def bits(array: np.ndarray) -> bytes:
    """The values' bits in native byte order (so '>u2' and '<u2' compare)."""
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("=")).tobytes()


def frame_file(folder: Path, k: int, n: int, suffix: str = "npy") -> Path:
    if n == 1:
        return folder / "scan_0/instrument/detector_0" / f"data.{suffix}"
    return folder / "frames" / f"{k:0{max(4, len(str(n - 1)))}d}.{suffix}"


def test_real_edf_files_match_fabio(real_data: Path, mount) -> None:
    source = real_data / "edf"
    with mount(source) as mnt:
        names = sorted(p.name for p in source.iterdir())
        assert sorted(os.listdir(mnt)) == sorted(names + [".vfs-stats"])
        for name in names:
            folder = mnt / name
            assert folder.is_dir(), name
            expected = fabio_frames(source / name)
            n = len(expected)
            assert {"header.txt", "scan_0"} <= set(os.listdir(folder)), name
            assert ("frames" in os.listdir(folder)) == (n > 1)
            assert (folder / "header.txt").read_bytes().count(b"}\n") == n
            truncated = name == "F2K_Seb_Lyso0675_header_only.edf"
            for k, (data, header) in enumerate(expected):
                npy = frame_file(folder, k, n)
                keys = {x[5:]: os.getxattr(npy if n > 1 else folder, x).decode() for x in os.listxattr(npy if n > 1 else folder)}
                assert keys == header, (name, k)
                if truncated:
                    check_truncated(npy, data, source / name)
                    continue
                for mmap in (None, "r"):
                    got = np.load(npy, mmap_mode=mmap)
                    assert got.shape == data.shape and bits(got) == bits(data), (name, k, mmap)
                    del got  # an open memory map would keep the mount busy
                with fabio.open(str(frame_file(folder, k, n, "edf"))) as edf:
                    assert bits(edf.data) == bits(data), name
                    assert all(edf.header[key] == value for key, value in header.items()
                               if key.upper() not in ("HEADERID", "IMAGE", "SIZE", "DATATYPE", "BYTEORDER",
                                                      "COMPRESSION") and not key.upper().startswith("DIM_"))
            if not truncated:
                stack = np.load(folder / "data.npy")
                assert bits(stack) == bits(np.stack([d for d, _ in expected]) if n > 1 else expected[0][0])


def check_truncated(npy: Path, data: np.ndarray, path: Path) -> None:
    """The header and the pages of data present read; a page with missing bytes gives EIO
    (the kernel reads whole pages)."""
    present = path.stat().st_size - 3072
    whole = (128 + present) // 4096 * 4096
    fd = os.open(npy, os.O_RDONLY)
    try:
        assert os.pread(fd, 128, 0).startswith(b"\x93NUMPY")
        assert os.pread(fd, whole - 128, 128) == data.tobytes()[: whole - 128]
        for offset in (whole, whole + 4096, 1 << 20):
            with pytest.raises(OSError) as err:
                os.pread(fd, 4096, offset)
            assert err.value.errno == errno.EIO
    finally:
        os.close(fd)


def test_big_endian_file_keeps_byte_order(real_data: Path, mount) -> None:
    with mount(real_data / "edf" / "crl8_0.edf") as mnt:
        arr = np.load(mnt / "data.npy", mmap_mode="r")
        assert arr.dtype == np.dtype(">u2")
        assert np.array_equal(arr, fabio.open(str(real_data / "edf" / "crl8_0.edf")).data)
        del arr  # an open memory map would keep the mount busy


def test_stacks_through_mount(tmp_path: Path, mount) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = sample((5, 16, 12), "f4")
    keys = [{"motor_mne": "samx samy", "motor_pos": f"{k}.5 {-k}", "counter_mne": "mon det",
             "counter_pos": f"{100 + k} {k * 7}", "title": f"frame {k}"} for k in range(5)]
    write_edf(src / "stack.edf", [frame_block(d, keys[k], image=k + 1) for k, d in enumerate(data)])
    write_edf(src / "stack.edf.gz", [frame_block(d, keys[k], image=k + 1) for k, d in enumerate(data)],
              compress="gzip")
    mixed = [sample((4, 6), "u2", 1), sample((7, 3), "u2", 2), sample((4, 6), "i4", 3)]
    write_edf(src / "mixed", [frame_block(d, {"k": k}, image=k + 1) for k, d in enumerate(mixed)])
    (src / "notes.txt").write_text("not data\n")
    with mount(src) as mnt:
        assert (mnt / "notes.txt").read_text() == "not data\n"
        for name in ("stack.edf", "stack.edf.gz"):
            folder = mnt / name
            assert sorted(os.listdir(folder)) == ["data.npy", "frames", "header.txt", "scan_0"]
            assert os.readlink(folder / "data.npy") == "scan_0/instrument/detector_0/data.npy"
            assert np.array_equal(np.array(np.load(folder / "data.npy", mmap_mode="r")), data)
            assert sorted(os.listdir(folder / "frames"))[:4] == ["0000.edf", "0000.npy", "0000.png", "0000.txt"]
            for k in (4, 0, 2):
                assert np.array_equal(np.load(folder / f"frames/{k:04d}.npy"), data[k])
                assert np.array_equal(np.loadtxt(folder / f"frames/{k:04d}.txt", dtype=np.float32), data[k])
                with fabio.open(str(folder / f"frames/{k:04d}.edf")) as img:
                    assert np.array_equal(img.data, data[k]) and img.header["title"] == f"frame {k}"
                assert os.getxattr(folder / f"frames/{k:04d}.npy", "user.title") == f"frame {k}".encode()
            with fabio.open(str(folder / "scan_0/instrument/detector_0/data.edf")) as img:
                assert img.nframes == 5
                assert all(np.array_equal(img.getframe(k).data, data[k]) for k in range(5))
                assert img.getframe(3).header["motor_pos"] == "3.5 -3"
            scan = folder / "scan_0"
            assert np.array_equal(np.load(scan / "instrument/positioners/samx.npy"), np.arange(5) + 0.5)
            assert np.array_equal(np.load(scan / "measurement/mon.npy"), 100 + np.arange(5))
            assert (scan / "instrument/detector_0/others/title.txt").read_text().splitlines()[4] == "frame 4"
            assert os.readlink(scan / "measurement/image_0/data.npy") == "../../instrument/detector_0/data.npy"
            assert np.array_equal(np.load(scan / "image/data.npy"), data)
            assert os.getxattr(scan, "user.NX_class") == b"NXentry"
        folder = mnt / "mixed"
        assert sorted(os.listdir(folder)) == ["frames", "header.txt", "scan_0"]
        assert "data.npy" not in os.listdir(folder / "scan_0/instrument/detector_0")
        for k, d in enumerate(mixed):
            got = np.load(folder / f"frames/{k:04d}.npy")
            assert got.dtype == d.dtype and np.array_equal(got, d)
        loads = stats(mnt)["chunk_loads"]
        gz = [n for label, n in loads.items() if label.endswith("stack.edf.gz")]
        assert gz == [1]  # the whole (small) gzip file: one block, decoded once


def test_20000_frames_through_mount(tmp_path: Path, mount) -> None:
    n = 20000
    data = (np.arange(n * 16, dtype=np.uint32) * 2654435761 % 4093).astype(np.uint16).reshape(n, 4, 4)
    path = write_edf(tmp_path / "many.edf", [frame_block(d, {"k": k}, image=k + 1) for k, d in enumerate(data)])
    with mount(path) as mnt:
        names = os.listdir(mnt / "frames")
        assert len(names) == 4 * n and "19999.npy" in names and "19999.png" in names and "00000.edf" in names
        for k in random.Random(0).sample(range(n), 25):
            assert np.array_equal(np.load(mnt / f"frames/{k:05d}.npy"), data[k])
        stack = np.load(mnt / "data.npy", mmap_mode="r")
        assert stack.shape == (n, 4, 4) and np.array_equal(stack[12345], data[12345])
        del stack  # an open memory map would keep the mount busy
        with fabio.open(str(mnt / "frames/07777.edf")) as img:
            assert np.array_equal(img.data, data[7777]) and img.header["k"] == "7777"


def test_other_formats_need_the_option(tmp_path: Path, mount) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = sample((20, 30), "i4")
    fabio.cbfimage.CbfImage(data=data, header={"exposure": "1.0"}).write(str(src / "img.cbf"))
    fabio.tifimage.TifImage(data=data.astype(np.uint16)).write(str(src / "img.tif"))
    raw = {name: (src / name).read_bytes() for name in ("img.cbf", "img.tif")}
    with mount(src) as mnt:
        for name, content in raw.items():
            assert (mnt / name).is_file() and (mnt / name).read_bytes() == content
    with mount(src, "--formats", "fabio") as mnt:
        for name, expected in (("img.cbf", data), ("img.tif", data.astype(np.uint16))):
            folder = mnt / name
            assert folder.is_dir(), name
            assert {"data.npy", "header.txt", "scan_0"} <= set(os.listdir(folder))
            assert np.array_equal(np.load(folder / "data.npy"), expected)
            with fabio.open(str(folder / "scan_0/instrument/detector_0/data.edf")) as img:
                assert np.array_equal(img.data, expected)
        assert json.loads((mnt / ".vfs-stats").read_text())["entries"] >= 2
