"""One conformance suite of the tree's behaviour, run against every client: the Python
API (``vfs.view.View``), the fsspec filesystem (``fsspec.filesystem("vfs")``) and a real
FUSE mount. Listing, sizes, whole and ranged reads, numpy.load, text, xattrs, links and
errors must be the same through each; expected values come from h5py, numpy and
Python's ``repr`` reading the sources directly.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import h5py
import numpy as np
import pytest

from tests.mounting import mounted
from tests.viewdata import write_source
from vfs.view import View

@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_source(tmp_path_factory.mktemp("conformance_src"))


def h5(source: Path, name: str) -> np.ndarray:
    with h5py.File(source / "scan.h5", "r", locking=False) as f:
        return f[name][()]


class ViewClient:
    def __init__(self, source: Path) -> None:
        self.view = View(source)

    def listdir(self, p: str) -> list[str]:
        return self.view.listdir(p)

    def size(self, p: str) -> int:
        return self.view.stat(p, follow_symlinks=True).size

    def kind(self, p: str) -> str:
        return self.view.stat(p).kind

    def mode(self, p: str) -> int:
        return self.view.stat(p, follow_symlinks=True).mode

    def read(self, p: str, offset: int = 0, n: int = -1) -> bytes:
        with self.view.open(p) as fh:
            fh.seek(offset)
            return fh.read(n)

    def xattrs(self, p: str) -> dict[str, bytes]:
        return self.view.xattrs(p)

    def readlink(self, p: str) -> str:
        return self.view.readlink(p)

    def load(self, p: str) -> np.ndarray:
        with self.view.open(p) as fh:
            return np.load(fh)


class FsspecClient(ViewClient):
    def __init__(self, source: Path) -> None:
        self.fs = fsspec.filesystem("vfs", fo=str(source), skip_instance_cache=True)

    def listdir(self, p: str) -> list[str]:
        return [name.rsplit("/", 1)[-1] for name in self.fs.ls(p, detail=False)]

    def size(self, p: str) -> int:
        return self.fs.info(p)["size"]

    def mode(self, p: str) -> int:
        return self.fs.info(p)["mode"]

    def kind(self, p: str) -> str:
        info = self.fs.info(p)
        return "link" if info.get("islink") else {"directory": "dir"}.get(info["type"], info["type"])

    def read(self, p: str, offset: int = 0, n: int = -1) -> bytes:
        return self.fs.cat_file(p, offset, None if n < 0 else offset + n)

    def xattrs(self, p: str) -> dict[str, bytes]:
        return self.fs.xattrs(p)

    def readlink(self, p: str) -> str:
        return self.fs.readlink(p)

    def load(self, p: str) -> np.ndarray:
        with fsspec.open(f"vfs://{p}", fo=self.fs.fo) as fh:
            return np.load(fh)


class MountClient:
    def __init__(self, mnt: Path) -> None:
        self.mnt = mnt

    def listdir(self, p: str) -> list[str]:
        return os.listdir(self.mnt / p)

    def size(self, p: str) -> int:
        return os.stat(self.mnt / p).st_size

    def mode(self, p: str) -> int:
        return os.stat(self.mnt / p).st_mode

    def kind(self, p: str) -> str:
        mode = os.lstat(self.mnt / p).st_mode
        return "link" if os.path.islink(self.mnt / p) else ("dir" if (mode & 0o170000) == 0o040000 else "file")

    def read(self, p: str, offset: int = 0, n: int = -1) -> bytes:
        with open(self.mnt / p, "rb") as fh:
            fh.seek(offset)
            return fh.read(n)

    def xattrs(self, p: str) -> dict[str, bytes]:
        path = self.mnt / p
        return {name: os.getxattr(path, name, follow_symlinks=False) for name in os.listxattr(path, follow_symlinks=False)}

    def readlink(self, p: str) -> str:
        return os.readlink(self.mnt / p)

    def load(self, p: str) -> np.ndarray:
        return np.load(self.mnt / p, mmap_mode="r")


@pytest.fixture(scope="module")
def mounted_source(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mnt = tmp_path_factory.mktemp("conformance_mnt") / "mnt"
    with mounted(source, mnt) as path:
        yield path


@pytest.fixture(params=["view", "fsspec", "mount"])
def client(request: pytest.FixtureRequest, source: Path) -> Any:
    if request.param == "mount":
        return MountClient(request.getfixturevalue("mounted_source"))
    return {"view": ViewClient, "fsspec": FsspecClient}[request.param](source)


def test_listing(client: Any, source: Path) -> None:
    assert sorted(client.listdir("")) == sorted(["scan.h5", "run.spec", "notes.txt", "cut.edf", ".vfs-stats"])
    assert sorted(client.listdir("scan.h5/entry")) == sorted([
        ".attrs.txt", "counts.npy", "counts.txt", "ext", "here", "image.edf", "image.npy", "image.png", "image.txt",
        "link.npy", "link.txt", "small.npy", "small.txt", "title.txt"])
    assert client.listdir("run.spec/1.1/measurement") == ["th.npy", "th.txt", "Monitor.npy", "Monitor.txt",
                                                           "I0.npy", "I0.txt"]


def test_npy_bytes_sizes_and_ranged_reads(client: Any, source: Path) -> None:
    for name in ("image", "counts", "small"):
        expected = io.BytesIO()
        np.save(expected, h5(source, f"/entry/{name}"))
        want = expected.getvalue()
        path = f"scan.h5/entry/{name}.npy"
        assert client.size(path) == len(want)
        assert client.read(path) == want
        for offset, n in [(0, 10), (len(want) - 7, 100), (len(want) // 3, 70_000), (len(want) + 5, 10)]:
            assert client.read(path, offset, n) == want[offset : offset + n]
    np.testing.assert_array_equal(client.load("scan.h5/entry/image.npy"), h5(source, "/entry/image"))


def test_short_text_is_pythons_repr(client: Any, source: Path) -> None:
    values = h5(source, "/entry/small")
    want = "".join({"nan": "+nan", "inf": "+inf"}.get(repr(v), repr(v)) + "\n" for v in values.tolist())
    text = client.read("scan.h5/entry/small.txt")
    assert text.decode() == want
    assert client.size("scan.h5/entry/small.txt") == len(want)
    np.testing.assert_array_equal(np.loadtxt(io.BytesIO(text)), values)
    assert client.read("run.spec/1.1/measurement/Monitor.txt") == b"1.595026e-13\n-3.25e+21\n1e-05\n"
    assert client.read("scan.h5/entry/title.txt") == b"my scan\n"


def test_large_text_is_fixed_width_and_exact(client: Any, source: Path) -> None:
    image = h5(source, "/entry/image")
    path = "scan.h5/entry/image.txt"
    assert client.size(path) == image.size * 16
    text = client.read(path)
    back = np.loadtxt(io.BytesIO(text), dtype=np.float64).astype(np.float32)
    np.testing.assert_array_equal(back, image)
    row = 123
    assert client.read(path, row * 400 * 16, 400 * 16).split() == text.splitlines()[row].split()
    assert b"+" not in text[:100_000] or b"e+" in text[:100_000]  # no sign noise on positive values


def test_modes_are_read_only(client: Any) -> None:
    assert client.mode("scan.h5/entry") == stat.S_IFDIR | 0o555
    assert client.mode("scan.h5/entry/image.npy") == stat.S_IFREG | 0o444
    assert client.mode("scan.h5/entry/link.txt") == stat.S_IFREG | 0o444
    assert client.mode("notes.txt") == stat.S_IFREG | 0o444


def test_xattrs(client: Any) -> None:
    assert client.xattrs("scan.h5/entry")["user.NX_class"] == b"NXentry"


def test_links(client: Any, source: Path) -> None:
    assert client.kind("scan.h5/entry/link.npy") == "link"
    assert client.readlink("scan.h5/entry/link.npy") == "small.npy"
    assert client.read("scan.h5/entry/link.txt") == client.read("scan.h5/entry/small.txt")
    assert client.readlink("scan.h5/entry/ext") == "not_there.h5::%2Fx"  # one component: never walks
    with pytest.raises(FileNotFoundError):
        client.read("scan.h5/entry/ext")
    assert "small.npy" in client.listdir("scan.h5/entry/here")  # a link to a parent group


def test_errors(client: Any) -> None:
    with pytest.raises(FileNotFoundError):
        client.read("scan.h5/entry/nothing.npy")
    with pytest.raises(FileNotFoundError):
        client.listdir("scan.h5/nothing")
    if isinstance(client, FsspecClient):  # fsspec's convention: ls of a file is that file
        assert client.fs.ls("scan.h5/entry/small.npy", detail=False) == ["scan.h5/entry/small.npy"]
    else:
        with pytest.raises(NotADirectoryError):
            client.listdir("scan.h5/entry/small.npy")
    with pytest.raises(IsADirectoryError):
        client.read("scan.h5/entry")
    frame = "cut.edf/data.npy"
    size = client.size(frame)
    assert client.read(frame, 0, 128)[:6] == b"\x93NUMPY"
    with pytest.raises(OSError) as info:
        client.read(frame, size - 4096, 4096)
    assert info.value.errno == errno.EIO
    # a short .txt whose data cannot be read: listed with the fixed-width size, reads EIO
    text = "cut.edf/scan_0/instrument/detector_0/data.txt"
    assert client.size(text) == 64 * 64 * 6
    with pytest.raises(OSError) as info:
        client.read(text, 64 * 64 * 6 - 600, 600)
    assert info.value.errno == errno.EIO


def test_fsspec_urls(source: Path) -> None:
    """``vfs://`` URLs, with ``fo=`` or chained to a local folder, and text mode."""
    with fsspec.open(f"vfs://scan.h5/entry/title.txt::file://{source}") as fh:
        assert fh.read() == b"my scan\n"
    with fsspec.open("vfs://scan.h5/entry/small.txt", fo=str(source), mode="rt") as fh:
        assert fh.readline() == "0.99\n"
    fs = fsspec.filesystem("vfs", fo=str(source))
    assert fs.cat_file("scan.h5/entry/title.txt", -4) == b"can\n"
    assert fs.glob("run.spec/1.1/measurement/*.txt") == [
        "run.spec/1.1/measurement/I0.txt", "run.spec/1.1/measurement/Monitor.txt", "run.spec/1.1/measurement/th.txt"]
    with pytest.raises(ValueError):
        fsspec.filesystem("vfs", fo="s3://bucket/data", target_protocol="s3")
    # what dask does: ship an open-file description to another process and read there
    shipped = pickle.loads(pickle.dumps(fsspec.open("vfs://scan.h5/entry/title.txt", fo=str(source))))
    with shipped as fh:
        assert fh.read() == b"my scan\n"
