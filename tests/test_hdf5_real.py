"""Every real HDF5/NeXus file in the shared real-data folder through one real mount:
every dataset h5py can read equals its .npy bit for bit, attributes equal their xattrs,
links are symlinks to the right places, and the three files that are unreadable on
purpose list fine and give EIO."""

from __future__ import annotations

import errno
import os
import posixpath
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest

from tests.mounting import mounted
from vfs.render.values import value_bytes

pytestmark = pytest.mark.mount
UNREADABLE = {"Tables_lzo1.h5", "times-nested-be.h5", "float.h5"}
BIG = 5_000_000  # elements: larger datasets are checked on a slice


@pytest.fixture(scope="module")
def real_mount(tmp_path_factory, real_data):
    mnt = tmp_path_factory.mktemp("real") / "m"
    with mounted(real_data / "hdf5", mnt, log_file=mnt.parent / "log") as m:
        yield real_data / "hdf5", m, mnt.parent / "log"


def h5_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and h5py.is_hdf5(p))


def walk(f: h5py.File):
    """(path, kind, object-or-link) for every link, without following links."""
    out = []

    def rec(group: h5py.Group, prefix: str) -> None:
        for bname in group.id.__iter__():
            name = bname.decode("utf-8", "surrogateescape")
            path = posixpath.join(prefix, name)
            link = group.get(bname, getlink=True)
            if isinstance(link, h5py.HardLink):
                obj = group[bname]
                out.append((path, "hard", obj))
                if isinstance(obj, h5py.Group):
                    rec(obj, path)
            else:
                out.append((path, type(link).__name__, link))
    rec(f, "/")
    return out


def same_fields(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-equal leaf fields (padding bytes between fields do not count)."""
    if a.dtype.names:
        return all(same_fields(a[n], b[n]) for n in a.dtype.names)
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def pytest_generate_tests(metafunc):
    if "h5file" in metafunc.fixturenames:
        root = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "hdf5"
        files = [str(p.relative_to(root)) for p in h5_files(root)] if root.is_dir() else []
        metafunc.parametrize("h5file", files)


def check_text(obj: h5py.Dataset, txt: Path) -> None:
    """A scalar's or a variable-length dataset's ``.txt`` against h5py's values: strings
    exactly (one per line), numbers parsed back to the same value (one row per line)."""
    text = txt.read_bytes().decode("utf-8", "surrogateescape")
    where = f"{obj.file.filename}:{obj.name}"
    if obj.shape is None:  # a NULL dataspace
        assert text == "", where
        return
    if h5py.check_string_dtype(obj.dtype) is not None:
        strings = np.asarray(obj.asstr(errors="surrogateescape")[()], dtype=object).reshape(-1)
        if obj.shape != ():  # one value per line: a newline inside a value is a space
            strings = [v.replace("\n", " ") for v in strings]
        assert text == "".join(f"{v}\n" for v in strings), where
        return
    base = h5py.check_vlen_dtype(obj.dtype)
    if base is not None:  # one element array per line
        rows = np.asarray(obj[()], dtype=object).reshape(-1)
        lines = text.splitlines()
        assert len(lines) == len(rows), where
        for line, row in zip(lines, rows):
            assert np.array_equal(np.array(line.split(), dtype=base), row), where
        return
    assert obj.shape == () and obj.dtype.kind in "biuf" and text.endswith("\n") and "\n" not in text[:-1], where
    value = obj[()]
    parsed = float(text) if obj.dtype.kind == "f" else int(text)
    assert parsed == value or (np.isnan(parsed) and np.isnan(value)), (where, text, value)


def test_every_dataset_equals_h5py(real_mount, h5file):
    root, mnt, _ = real_mount
    seen = set()
    with h5py.File(root / h5file, "r") as f:
        for path, kind, obj in walk(f):
            if kind != "hard" or not isinstance(obj, h5py.Dataset):
                continue
            addr = h5py.h5o.get_info(obj.id).addr
            view = mnt / h5file / path.lstrip("/")
            try:
                dtype, shape = obj.dtype, obj.shape
            except Exception:
                with pytest.raises(OSError) as err:
                    Path(f"{view}.npy").read_bytes()
                assert err.value.errno == errno.EIO
                continue
            if shape is None or dtype.kind == "O" or shape == ():
                check_text(obj, Path(f"{view}.txt"))
                if shape == () and dtype.kind != "O":
                    value = obj[()]
                    got = np.load(f"{view}.npy")
                    assert np.asarray(got).tobytes() == np.asarray(value, dtype=got.dtype).tobytes()
                continue
            try:
                expected = obj[()] if obj.size <= BIG else obj[(0,) * (len(shape) - 1)]
            except Exception:
                assert h5file in UNREADABLE, f"{h5file}:{path} unreadable by h5py"
                with pytest.raises(OSError) as err:
                    Path(f"{view}.npy").read_bytes()
                assert err.value.errno == errno.EIO
                continue
            got = np.load(f"{view}.npy", mmap_mode="r")
            assert got.shape == tuple(shape) + (dtype.subdtype[1] if dtype.subdtype else ())
            if obj.size > BIG:
                got = got[(0,) * (len(shape) - 1)]
            if expected.dtype.names:
                assert same_fields(np.asarray(got), expected), f"{h5file}:{path}"
            else:
                assert np.asarray(got).tobytes() == np.ascontiguousarray(expected).tobytes(), f"{h5file}:{path}"
            if addr not in seen:
                seen.add(addr)


def test_attributes_and_links(real_mount, h5file):
    root, mnt, _ = real_mount
    with h5py.File(root / h5file, "r") as f:
        for path, kind, obj in walk(f):
            view = mnt / h5file / path.lstrip("/")
            if kind == "SoftLink":
                target = posixpath.normpath(posixpath.join(posixpath.dirname(path), obj.path))
                resolved = f.get(path)
                name = f"{view}.npy" if isinstance(resolved, h5py.Dataset) else str(view)
                if isinstance(resolved, h5py.Dataset) and not Path(name).is_symlink():
                    name = f"{view}.txt"
                link = os.readlink(name)
                suffix = name[len(str(view)):]  # "", ".npy" or ".txt": a dataset's link per rendering
                expect = posixpath.relpath(target, posixpath.dirname(path)) + suffix
                assert link == expect, (path, link, expect)
                if resolved is not None:
                    assert os.path.exists(name), (path, link)
            elif kind == "ExternalLink":
                other = (root / h5file).parent / obj.filename
                candidates = [str(view), f"{view}.npy", f"{view}.txt"]
                present = [c for c in candidates if os.path.islink(c)]
                assert present, path
                link = os.readlink(present[0])
                if other.exists():
                    assert os.path.exists(present[0]), (path, link)
                else:
                    shown = f"{obj.filename}::{obj.path}".replace("/", "%2F")  # one component: never walks
                    assert link == shown and not os.path.exists(present[0])
            elif kind == "hard":
                if isinstance(obj, h5py.Datatype):  # a committed (named) datatype
                    assert Path(f"{view}.dtype.txt").read_text() == f"{obj.dtype!r}\n", path
                    continue
                if isinstance(obj, h5py.Group):
                    target = view
                elif isinstance(obj, h5py.Dataset):
                    names = [f"{view}.{s}" for s in ("npy", "txt")]
                    target = next((Path(n) for n in names if os.path.exists(n)), None)
                    if target is None:
                        continue
                else:
                    continue
                try:
                    attrs = {k: obj.attrs[k] for k in obj.attrs}
                except Exception:
                    continue
                got = {k[5:]: os.getxattr(target, k) for k in os.listxattr(target) if k.startswith("user.")}
                assert set(got) == set(attrs), path
                for k, v in attrs.items():
                    assert got[k] == value_bytes(v), (path, k)


def test_virtual_dataset_size_from_metadata(real_mount):
    root, mnt, _ = real_mount
    st = (mnt / "Therm_6_2.nxs" / "entry" / "data" / "data.npy").stat()
    assert st.st_size == 488 * 4362 * 4148 * 8 + 128
    assert os.readlink(mnt / "Therm_6_2.nxs" / "entry" / "data" / "data_000001") == \
        "Therm_6_2_000001.h5::%2Fdata"


def test_unreadable_files_list_and_log_once(real_mount):
    root, mnt, log = real_mount
    for name in ["tuple0.npy", "tuple0.txt"]:
        for _ in range(2):
            with pytest.raises(OSError) as err:
                (mnt / "Tables_lzo1.h5" / name).read_bytes()
            assert err.value.errno == errno.EIO
    assert "tuple0.npy" in os.listdir(mnt / "Tables_lzo1.h5")
    text = log.read_text()
    assert text.count("Tables_lzo1.h5:/tuple0: cannot read chunk") == 1
    assert os.listdir(mnt / "float.h5")
