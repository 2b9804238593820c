"""HDF5 through a real FUSE mount, used the way people use it: os calls, numpy, fabio,
and ls/cat/awk/getfattr run as subprocesses. h5py is the oracle."""

from __future__ import annotations

import errno
import json
import mmap
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import fabio
import h5py
import numpy as np
import pytest

from tests.h5data import CUBE_CHUNKS, CUBE_SHAPE, cube_data, write_all, write_cube
from tests.mounting import mounted, stats

pytestmark = pytest.mark.mount


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    write_all(src)
    mnt = tmp_path_factory.mktemp("mnt") / "m"
    log = mnt.parent / "vfs.log"
    with mounted(src, mnt, "--cache-size", "64M", log_file=log) as m:
        yield src, m, log


def datasets(path: Path):
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj
        f.visititems(visit)
        for name, ds in out.items():
            if isinstance(name, bytes):
                name = name.decode("utf-8", "surrogateescape")
            try:
                yield name, ds.shape, ds.dtype, (ds[()] if ds.shape != (1000, 1000, 1000, 500) else None)
            except Exception:
                yield name, None, None, None


def test_listing_plain_files_and_detection(env):
    src, mnt, log = env
    names = set(os.listdir(mnt))
    assert {"main.h5", "other.h5", "cube.h5", "userblock.dat", "fake.h5", "truncated.h5", "notes.txt",
            "sub dir", ".vfs-stats"} <= names
    assert (mnt / "main.h5").is_dir() and (mnt / "userblock.dat").is_dir()
    assert (mnt / "sub dir" / "deeper.nxs").is_dir()
    for plain in ["notes.txt", "fake.h5", "truncated.h5"]:
        assert (mnt / plain).is_file()
        assert (mnt / plain).read_bytes() == (src / plain).read_bytes()
        assert (mnt / plain).stat().st_mtime_ns == (src / plain).stat().st_mtime_ns
        assert (mnt / plain).stat().st_size == (src / plain).stat().st_size
    assert (mnt / "main.h5").stat().st_mtime_ns == (src / "main.h5").stat().st_mtime_ns
    text = log.read_text()
    assert text.count("fake.h5: looks like hdf5 but cannot be opened") == 1


@pytest.mark.parametrize("filename", ["main.h5", "other.h5", "userblock.dat", "cube.h5"])
def test_every_dataset_npy_equals_h5py(env, filename):
    src, mnt, _ = env
    checked, elsewhere = set(), set()
    for name, shape, dtype, value in datasets(src / filename):
        base = mnt / filename / name
        if value is None or name == "huge" or dtype.kind == "O" or shape is None or isinstance(value, h5py.Empty):
            elsewhere.add(name)
            continue
        got = np.load(str(base) + ".npy", mmap_mode="r" if shape else None)
        expected = np.asarray(value)
        if dtype.subdtype is not None:
            assert got.shape == expected.shape
        assert got.shape == expected.shape
        if expected.dtype.names:
            for field in expected.dtype.names:
                assert np.asarray(got[field]).tobytes() == expected[field].tobytes()
        else:
            assert got.dtype.str.lstrip("|") == expected.dtype.str.lstrip("|") or expected.dtype.kind == "b"
            assert np.asarray(got).tobytes() == expected.tobytes(), name
        checked.add(name)
    assert elsewhere == NOT_NPY.get(filename, set())  # text, empty and huge data: checked by other tests
    assert len(checked) == DATASETS[filename] - len(elsewhere)


#: datasets in h5data's files (counted by hand from h5data.py)
DATASETS = {"main.h5": 29 + 7, "other.h5": 1, "userblock.dat": 3, "cube.h5": 10}
#: datasets whose .npy this test does not compare: strings (.txt only), a null dataspace, 2 TB of fill
NOT_NPY = {"main.h5": {"entry/types/vlen_strings", "entry/types/scalar_string", "entry/types/null_space"},
           "cube.h5": {"huge"}}


def test_txt_and_scalars(env):
    src, mnt, _ = env
    types = mnt / "main.h5" / "entry" / "types"
    with h5py.File(src / "main.h5") as f:
        for name in ["le_f8", "be_f4", "le_i8", "le_u1", "le_f2"]:
            back = np.loadtxt(types / f"{name}.txt", dtype=np.float64)
            np.testing.assert_array_equal(back.astype(f[f"entry/types/{name}"].dtype), f[f"entry/types/{name}"][()])
        assert (types / "scalar_string.txt").read_text() == "a scalar string\n"
        assert (types / "scalar_float.txt").read_text() == "2.5\n"
        assert (types / "scalar_int.txt").read_text() == "-7\n"
        assert (types / "scalar_bytes.txt").read_text() == "fixed scalar\n"
        assert (types / "vlen_strings.txt").read_text() == "one\ntwo words\nthrée\n"
        assert np.load(types / "scalar_float.npy") == 2.5
        assert not (types / "vlen_strings.npy").exists()
    assert (types / "null_space.txt").read_bytes() == b""


def test_edf_rendering_read_by_fabio(env):
    src, mnt, _ = env
    img = fabio.open(str(mnt / "main.h5" / "entry" / "types" / "le_f4.edf"))
    with h5py.File(src / "main.h5") as f:
        np.testing.assert_array_equal(img.data, f["entry/types/le_f4"][()])
    assert img.header["units"] == "mm"
    stack = fabio.open(str(mnt / "other.h5" / "data" / "frames.edf"))
    assert stack.nframes == 2
    np.testing.assert_array_equal(stack.getframe(1).data, np.arange(40, dtype=np.uint16).reshape(2, 4, 5)[1])
    assert not (mnt / "main.h5" / "entry" / "types" / "complex64.edf").exists()


def test_attributes_as_xattrs_and_hidden_text(env):
    src, mnt, _ = env
    root = mnt / "main.h5"
    assert os.getxattr(root, "user.title") == b"main test file"
    assert os.getxattr(root, "user.numbers") == b"0 1 2 3"
    assert float(os.getxattr(root, "user.pi")) == np.pi
    assert os.getxattr(root, "user.bytes_attr") == b"NXroot"
    assert os.getxattr(root / "entry", "user.NX_class") == b"NXentry"
    ds = root / "entry" / "types" / "le_f4.npy"
    assert set(os.listxattr(ds)) == {"user.units", "user.scale", "user.vlen"}
    assert os.getxattr(ds, "user.scale") == b"1.5 2.5"
    with pytest.raises(OSError) as err:
        os.getxattr(ds, "user.nope")
    assert err.value.errno == errno.ENODATA
    text = (root / "entry" / "types" / ".le_f4.attrs.txt").read_text()
    assert "units = mm\n" in text and "scale = 1.5 2.5\n" in text
    assert ".le_f4.attrs.txt" not in subprocess.run(["ls", root / "entry" / "types"], capture_output=True,
                                                    text=True).stdout
    out = subprocess.run(["getfattr", "-d", str(ds)], capture_output=True, text=True, check=True).stdout
    assert 'user.units="mm"' in out


def test_links(env):
    src, mnt, _ = env
    links = mnt / "main.h5" / "entry" / "links"
    assert os.readlink(links / "soft_dataset.npy") == "../types/le_f8.npy"
    assert os.readlink(links / "soft_group") == "../types"
    assert os.readlink(links / "soft_relative.npy") == "hard.npy"
    np.testing.assert_array_equal(np.load(links / "soft_dataset.npy"), np.load(links.parent / "types" / "le_f8.npy"))
    assert (links / "soft_group" / "le_f8.npy").is_file()
    assert os.readlink(links / "soft_dangling") == "../../nowhere/at/all"
    assert not (links / "soft_dangling").exists()
    assert os.readlink(links / "external.npy") == "../../../other.h5/data/frames.npy"
    np.testing.assert_array_equal(np.load(links / "external.npy"), np.arange(40, dtype=np.uint16).reshape(2, 4, 5))
    assert os.readlink(links / "external_group") == "../../../other.h5/data"
    assert os.readlink(links / "external_missing") == "does_not_exist.h5::%2Fx%2Fy"  # one component: never walks
    assert os.readlink(links / "external_outside") == "%2Fetc%2Fhostname.h5::%2Fx"
    assert not (links / "external_missing").exists()
    # hard links: one object, one inode number
    assert (links / "hard.npy").stat().st_ino == (links.parent / "types" / "le_i4.npy").stat().st_ino
    assert (links / "hard.npy").stat().st_ino != (links.parent / "types" / "le_i4.txt").stat().st_ino


def test_odd_names_shown_as_they_are(env):
    src, mnt, _ = env
    names = os.listdir(os.fsencode(mnt / "main.h5" / "entry" / "names"))
    for name in ["with space", "colon: here", "hash#tag", "<angle>", " leading space", "tab\tname", "ünïcode"]:
        assert f"{name}.npy".encode() in names
    assert b"bad\xff\xfeutf8.npy" in names
    assert b"group with spaces" in names
    data = np.load(os.path.join(os.fsencode(mnt / "main.h5" / "entry" / "names"), b"bad\xff\xfeutf8.npy"))
    assert data.tolist() == [0, 1, 2]


def test_sizes_come_from_metadata(env):
    src, mnt, _ = env
    before = stats(mnt)["chunk_loads"]
    t0 = time.perf_counter()
    out = subprocess.run(["ls", "-l", str(mnt / "cube.h5")], capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - t0
    huge = (mnt / "cube.h5" / "huge.npy").stat().st_size
    assert huge == 1000 * 1000 * 1000 * 500 * 8 + 128
    assert str(huge) in out
    assert stats(mnt)["chunk_loads"] == before
    assert elapsed < 30  # sanity only; nothing was read


def test_spectrum_through_mmap_reads_only_its_chunks(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_cube(src / "cube.h5")
    with mounted(src, tmp_path / "m") as mnt:
        check_spectra(src, mnt)


def chunks_for_bytes(ranges, header: int, shape, chunks, itemsize: int) -> set:
    """Oracle: the chunks that hold the elements behind these byte ranges of an .npy."""
    out = set()
    for offset, size in ranges:
        a = max(offset - header, 0) // itemsize
        b = -(-max(offset + size - header, 0) // itemsize)
        b = min(b, int(np.prod(shape)))
        if a >= b:
            continue
        idx = np.unravel_index(np.arange(a, b), shape)
        out |= set(zip(*[i // c for i, c in zip(idx, chunks)]))
    return out


def settled_stats(mnt: Path) -> dict:
    """Stats once the kernel's asynchronous read-ahead has finished."""
    last = stats(mnt)
    for _ in range(50):
        time.sleep(0.1)
        now = stats(mnt)
        if now["recent_reads"] == last["recent_reads"] and now["chunk_loads"] == last["chunk_loads"]:
            return now
        last = now
    return last


def check_spectra(src: Path, mnt: Path) -> None:
    expected_cube = cube_data()
    total_chunks = int(np.prod([s // c for s, c in zip(CUBE_SHAPE, CUBE_CHUNKS)]))
    for name in ["gzip", "bitshuffle"]:
        path = mnt / "cube.h5" / f"{name}.npy"
        label = f"{src / 'cube.h5'}:/{name}"
        header = path.stat().st_size - expected_cube.nbytes
        arr = np.load(path, mmap_mode="r")
        arr._mmap.madvise(mmap.MADV_RANDOM)
        i, j = 29, 21  # far from the header, which the kernel's read-ahead brings in
        before = settled_stats(mnt)
        spectrum = np.array(arr[i, j, :])
        after = settled_stats(mnt)
        np.testing.assert_array_equal(spectrum, expected_cube[i, j, :])
        served = [(o, n) for p, o, n in after["recent_reads"][len(before["recent_reads"]):] if p.endswith(name + ".npy")]
        if len(before["recent_reads"]) == 64:  # the deque was full: compare by content instead
            served = [tuple(r[1:]) for r in after["recent_reads"] if r[0].endswith(name + ".npy")
                      and r not in before["recent_reads"]]
        touched = chunks_for_bytes(served, header, CUBE_SHAPE, CUBE_CHUNKS, 4)
        already = {tuple(int(x) for x in r.split(" ", 1)[1].strip("()").split(",")) for r in before["recent_loads"]
                   if r.startswith(label + " ")}
        loads = after["chunk_loads"].get(label, 0) - before["chunk_loads"].get(label, 0)
        parts = after["part_loads"].get(label, 0) - before["part_loads"].get(label, 0)
        spectrum_chunks = {(i // 8, j // 8, k) for k in range(4)}
        # the kernel asks for whole pages (or folios); exactly the chunks under those bytes
        # are decoded: whole (gzip), or only their blocks (bitshuffle), once per request
        assert loads <= len(touched - already) <= loads + parts
        assert (parts > 0) == (name == "bitshuffle")
        assert spectrum_chunks <= touched | already
        assert loads < total_chunks // 4, "a spectrum must not decode a large part of the cube"
        del arr


def test_spectrum_bytes_decode_exactly_the_spectrum_chunks(tmp_path):
    """Core level, no kernel in between: the byte span of one spectrum -> its 4 chunks."""
    from vfs.cache import ChunkCache
    from vfs.context import Context
    from vfs.formats.registry import BACKENDS
    import os as _os

    write_cube(tmp_path / "cube.h5")
    ctx = Context(root=str(tmp_path), cache=ChunkCache(1 << 30))
    st = _os.stat(tmp_path / "cube.h5")
    hdf5 = next(b for b in BACKENDS if b.name == "hdf5")
    folder = hdf5.open_folder(str(tmp_path / "cube.h5"), st, ctx, 7)
    for name in ["gzip", "bitshuffle", "blosc", "zstd", "lzf"]:
        node = folder.child(f"{name}.npy")
        header = node.size - cube_data().nbytes
        label = f"{tmp_path / 'cube.h5'}:/{name}"
        for i, j in [(13, 21), (0, 0), (31, 31)]:
            before = ctx.cache.loads[label] + ctx.cache.parts[label]
            start = header + ((i * 32 + j) * 1024) * 4
            data = node.read(start, 4096)
            np.testing.assert_array_equal(np.frombuffer(data, "<f4"), cube_data()[i, j, :])
            after = ctx.cache.loads[label] + ctx.cache.parts[label]  # whole chunks, or their blocks
            assert after - before == 4 or (i, j) == (0, 0) and after - before <= 4
        assert (ctx.cache.parts[label] > 0) == (name == "bitshuffle")


def test_filters_read_transparently(env):
    src, mnt, _ = env
    expected = cube_data()
    for name in ["gzip", "bitshuffle", "blosc", "blosc2", "zstd", "lzf", "chunked", "contiguous"]:
        got = np.load(mnt / "cube.h5" / f"{name}.npy")
        assert got.tobytes() == expected.tobytes(), name
    sparse = np.load(mnt / "cube.h5" / "sparse.npy")
    assert (sparse[:16, :16, :16] == 5).all() and (sparse[16:] == -1).all()


def test_user_tools(env):
    src, mnt, _ = env
    types = mnt / "main.h5" / "entry" / "types"
    out = subprocess.run(["awk", "{ s += $1 } END { printf \"%.10f\", s }", str(types / "le_f8.txt")],
                         capture_output=True, text=True, check=True).stdout
    with h5py.File(src / "main.h5") as f:
        assert float(out) == pytest.approx(f["entry/types/le_f8"][:, 0].sum(), rel=1e-12)
    cat = subprocess.run(["cat", str(types / "le_i4.npy")], capture_output=True, check=True).stdout
    assert cat == (types / "le_i4.npy").read_bytes()
    listing = subprocess.run(["ls", "-lR", str(mnt / "main.h5")], capture_output=True, check=True).stdout.decode(
        errors="replace")
    assert "le_f4.npy" in listing and "soft_group -> ../types" in listing
    code = ("import fabio, sys; im = fabio.open(sys.argv[1]); print(im.data.shape, im.header['units'])")
    out = subprocess.run([sys.executable, "-c", code, str(types / "le_f4.edf")], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "(6, 5) mm"


def test_everything_that_writes_gets_erofs(env):
    src, mnt, _ = env
    target = mnt / "main.h5" / "entry" / "types" / "le_f4.npy"
    attempts = [
        lambda: open(target, "r+b"),
        lambda: open(mnt / "new.txt", "w"),
        lambda: os.mkdir(mnt / "newdir"),
        lambda: os.rename(mnt / "notes.txt", mnt / "renamed.txt"),
        lambda: os.unlink(mnt / "notes.txt"),
        lambda: os.chmod(mnt / "notes.txt", 0o777),
        lambda: os.truncate(mnt / "notes.txt", 0),
        lambda: os.setxattr(target, "user.x", b"1"),
        lambda: os.symlink("x", mnt / "link"),
        lambda: os.utime(mnt / "notes.txt", (0, 0)),
    ]
    for attempt in attempts:
        with pytest.raises(OSError) as err:
            attempt()
        assert err.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM), attempt
    assert (src / "notes.txt").read_text() == "plain text passes through\n"


def test_eight_concurrent_readers(env):
    src, mnt, _ = env
    files = [mnt / "cube.h5" / f"{n}.npy" for n in ["gzip", "chunked", "contiguous", "bitshuffle"]]
    files += [mnt / "cube.h5" / "gzip.txt"]
    reference = {f: None for f in files}
    expected_npy = np.lib.format
    cube = cube_data()
    import io

    buf = io.BytesIO()
    np.save(buf, cube)
    npy = buf.getvalue()
    errors: list[str] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(40):
            f = rng.choice(files[:4])
            size = f.stat().st_size
            o, n = rng.randrange(size), rng.choice([1, 4096, 100_000, 1 << 20])
            with open(f, "rb") as fh:
                fh.seek(o)
                got = fh.read(n)
            if got != npy[o : o + n]:
                errors.append(f"{f} {o} {n}")

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert not errors, errors[:3]
    del reference, expected_npy


def test_unreadable_data_is_eio_logged_once_and_the_mount_stays_up(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "raw.bin").write_bytes(np.arange(100, dtype="<f8").tobytes())
    with h5py.File(src / "ext.h5", "w") as f:
        f.create_dataset("kept", data=np.arange(5))
        f.create_dataset("external", shape=(100,), dtype="<f8", external=[("raw.bin", 0, 800)])
        f.create_dataset("external_gone", shape=(10, 10), dtype="<f8", external=[("gone.bin", 0, 800)])
    log = tmp_path / "log"
    with mounted(src, tmp_path / "m", log_file=log) as mnt:
        ds = mnt / "ext.h5"
        assert sorted(p.name for p in ds.iterdir()) == ["external.npy", "external.txt", "external_gone.edf",
                                                       "external_gone.npy", "external_gone.png", "external_gone.txt", "kept.npy",
                                                       "kept.txt"]
        assert (ds / "external_gone.npy").stat().st_size == 128 + 800
        np.testing.assert_array_equal(np.load(ds / "external.npy"), np.arange(100.0))
        for _ in range(3):
            for suffix in ["npy", "txt"]:
                with pytest.raises(OSError) as err:
                    (ds / f"external_gone.{suffix}").read_bytes()
                assert err.value.errno == errno.EIO
        assert np.load(ds / "kept.npy").tolist() == [0, 1, 2, 3, 4]
        assert os.listdir(mnt)
    text = log.read_text()
    assert text.count("external_gone: cannot read chunk") == 1, text
    assert "gone.bin" in text or "external" in text


def test_single_file_source(tmp_path):
    write_all(tmp_path / "src")
    with mounted(tmp_path / "src" / "main.h5", tmp_path / "m") as mnt:
        assert "entry" in os.listdir(mnt)
        links = mnt / "entry" / "links"
        assert os.readlink(links / "external") == "other.h5::%2Fdata%2Fframes"
        assert np.load(mnt / "entry" / "types" / "le_i2.npy").dtype == np.dtype("<i2")
