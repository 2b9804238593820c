"""Live acquisition through a real mount: files written while mounted, by real writer
processes (``tests/live_writers.py``), read the way users read them.

Each test drives its writer one step at a time (the writer answers once its data are
flushed) and checks what readers see after every step, polling with a deadline; h5py,
fabio and numpy are the oracles.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import fabio
import h5py
import numpy as np
import pytest

from tests.live_writers import FRAME, Writer, edf_bytes

T = TypeVar("T")
DEADLINE = 5.0  # generous: the contract is 1 s, the machine is shared


#: numpy's words when the kernel still holds the previous size of a .npy that just grew
#: (for up to the 0.5 s attribute timeout, docs/layout.md "Live data"): read again
STALE_SIZE = ("mmap length is greater than file size", "not fully written", "EOF: reading array data")


def poll(fn: Callable[[], T | None], what: str, deadline: float = DEADLINE) -> T:
    """``fn()``'s first value that is not None; ENOENT/ENOTDIR and numpy's refusal of a
    file whose size the kernel has not refreshed yet (see STALE_SIZE) are retried."""
    end = time.monotonic() + deadline
    last: object = None
    while time.monotonic() < end:
        try:
            value = fn()
        except (FileNotFoundError, NotADirectoryError) as exc:
            value, last = None, exc
        except ValueError as exc:  # numpy and a size the kernel has not refreshed yet
            if not any(words in str(exc) for words in STALE_SIZE):
                raise
            value, last = None, exc
        if value is not None:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what}: not seen within {deadline} s (last: {last!r})")



#: numpy parses .npy headers with ast.literal_eval, which CPython before 3.11.8 cannot run
#: in two threads at once ("AST constructor recursion depth mismatch", CPython gh-106905):
#: the test's reader threads take turns for the header only; their reads stay concurrent.
NPY_HEADER = threading.Lock()


def frames_seen(npy: Path) -> int | None:
    """How many frames ``data.npy`` shows, after checking every one is complete; None
    while the kernel's cached size lags the header (numpy refuses the file)."""
    try:
        with NPY_HEADER:
            a = np.load(npy, mmap_mode="r")
    except ValueError as exc:
        if any(words in str(exc) for words in STALE_SIZE):
            return None
        raise
    assert a.shape[1:] == FRAME, a.shape
    for k in range(a.shape[0]):
        assert (a[k] == k).all(), f"frame {k} of {a.shape[0]} is torn or wrong"
    return a.shape[0]


def test_swmr_file_is_followed_frame_by_frame(tmp_path: Path, mount: Any) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with mount(src) as mnt:
        assert os.listdir(mnt) == [".vfs-stats"]
        writer = Writer("swmr", src / "live.h5")
        try:
            entry = mnt / "live.h5" / "entry"
            poll(lambda: (entry / "counter.npy").exists() or None, "the SWMR file as a folder")
            seen = [0]
            for _ in range(4):
                n = writer.step()

                def observe() -> int | None:  # every look: whole frames only, never more than flushed
                    now = frames_seen(entry / "data.npy")
                    if now is None:
                        return None
                    assert seen[0] <= now <= n, (seen, now, n)
                    seen[0] = now
                    return now if now == n else None

                poll(observe, f"frame {n}")
                with h5py.File(src / "live.h5", "r", libver="latest", swmr=True) as f:
                    counter = f["entry/counter"][()]
                poll(lambda: np.array_equal(np.load(entry / "counter.npy"), counter) or None,
                     f"counter (gzip chunks) after frame {n}")
            assert len((entry / "data.txt").read_text().splitlines()) == n * FRAME[0]
            with fabio.open(str(entry / "data.edf")) as img:
                assert img.nframes == n
                assert (img.getframe(n - 1).data == n - 1).all()
            assert writer.say("close") == "closed"
            poll(lambda: (os.stat(entry).st_mtime_ns == os.stat(src / "live.h5").st_mtime_ns) or None,
                 "the closed file's folder")
            assert frames_seen(entry / "data.npy") == n
        finally:
            writer.stop()
    log = (tmp_path / "mnt0.log").read_text()
    assert "plain file" not in log and "already open" not in log, log


def test_files_first_seen_incomplete_become_folders(tmp_path: Path, mount: Any) -> None:
    src = tmp_path / "src"
    src.mkdir()
    full = tmp_path / "full.h5"
    with h5py.File(full, "w") as f:
        f["x"] = np.arange(1000.0)
    blob = full.read_bytes()
    spec = b"#F s\n#E 1\n\n#S 1 ascan x 0 1 2 0.1\n#N 2\n#L x  y\n1 2\n3 4\n"
    edf = edf_bytes(7)
    parts = {"a.h5": blob, "b.spec": spec, "c.edf": edf}
    for name, data in parts.items():
        (src / name).write_bytes(data[:6])  # too short to know, or not openable
    bad = src / "bad.h5"
    bad.write_bytes(blob[:8] + b"\0" * 5000)  # an HDF5 signature and nothing valid, for ever
    with mount(src) as mnt:
        for name in [*parts, "bad.h5"]:
            assert (mnt / name).is_file(), name
        assert (mnt / "a.h5").read_bytes() == blob[:6]
        for name, data in parts.items():  # completed in place (same inode) while listed
            with open(src / name, "r+b") as fh:
                fh.write(data)
        with open(bad, "ab") as fh:
            fh.write(b"\1" * 100)
        assert np.array_equal(poll(lambda: np.load(mnt / "a.h5" / "x.npy"), "a.h5 as a folder"), np.arange(1000.0))
        assert poll(lambda: np.load(mnt / "b.spec/1.1/measurement/y.npy"), "b.spec").tolist() == [2, 4]
        assert (poll(lambda: np.load(mnt / "c.edf/data.npy"), "c.edf") == 7).all()
        (src / "late.h5").write_bytes(blob[:100])  # once more: the bad file changes with a good one
        poll(lambda: (mnt / "late.h5").is_file() or None, "late.h5 listed")
        with open(bad, "ab") as fh:
            fh.write(b"\2" * 100)
        with open(src / "late.h5", "r+b") as fh:
            fh.write(blob)
        poll(lambda: (mnt / "late.h5").is_dir() or None, "late.h5 as a folder")
        assert (mnt / "bad.h5").is_file() and (mnt / "bad.h5").read_bytes() == bad.read_bytes()
    log = (tmp_path / "mnt0.log").read_text()
    assert sum("bad.h5" in line for line in log.splitlines()) == 1, log


@pytest.mark.parametrize("kind", ["edf", "hdf5-raw", "hdf5-gzip"])
def test_rewritten_in_place_gives_new_content_or_eio(tmp_path: Path, mount: Any, kind: str) -> None:
    """Nodes built from the old version must not serve bytes of the new one: EIO until
    the folder is rebuilt (``--recheck 2`` keeps the old nodes that long), then the new
    content, never bytes at old offsets of the new file."""
    src = tmp_path / "src"
    src.mkdir()
    path = src / ("f.edf" if kind == "edf" else "f.h5")
    rows = 64 if kind == "edf" else 1024

    def write(value: int, version: int) -> None:
        if kind == "edf":
            with open(path, "r+b" if path.exists() else "wb") as fh:  # same inode
                fh.truncate(0)
                fh.write(edf_bytes(value, header_size=512 * version))
            return
        with h5py.File(path, "w") as f:  # "w" truncates the same inode
            if version == 2:
                f["pad"] = np.arange(50_000)  # moves the data to another offset
            opts = {"compression": "gzip", "chunks": (256, 32)} if kind == "hdf5-gzip" else {}
            f.create_dataset("d", data=np.full((rows, 32), value, "<u2"), **opts)

    write(1, 1)
    with mount(src, "--recheck", "2") as mnt:
        npy = mnt / path.name / ("data.npy" if kind == "edf" else "d.npy")
        assert npy.stat().st_size == 128 + rows * 32 * 2  # nodes built, no data read (nor cached)
        ino = path.stat().st_ino
        write(2, 2)
        assert path.stat().st_ino == ino
        try:
            data = np.load(npy)
        except OSError as exc:
            assert exc.errno == errno.EIO, exc
        else:  # the folder was already rebuilt: then it is the new content, whole
            assert (data == 2).all(), data
        def new_content() -> np.ndarray | None:
            try:
                a = np.load(npy)
            except OSError as exc:  # until the folder is rebuilt
                assert exc.errno == errno.EIO, exc
                return None
            assert (a == 2).all(), a  # never the old content, never a mix
            return a

        new = poll(new_content, "the new content", 10)
        assert new.shape == (rows, 32)


def test_folder_filling_with_frames(tmp_path: Path, mount: Any) -> None:
    src = tmp_path / "src"
    frames = src / "frames"
    frames.mkdir(parents=True)
    for i in range(1000):
        (frames / f"log_{i:04d}.txt").write_text("x\n" * 2000)  # siblings, not data, not short
    writer = Writer("edf", frames)
    try:
        with mount(src) as mnt:
            listing = set(os.listdir(mnt / "frames"))
            assert len(listing) == 1000
            for _ in range(5):
                n = writer.step()
                name = f"frame_{n - 1:05d}.edf"
                # seen by listing (the background rescan), not only by name
                poll(lambda: name in os.listdir(mnt / "frames") or None, f"{name} listed")
                data = poll(lambda: np.load(mnt / "frames" / name / "data.npy"), name)
                with fabio.open(str(frames / name)) as img:
                    assert np.array_equal(data, img.data)
                assert (data == n - 1).all()
            assert sorted(os.listdir(mnt / "frames")) == sorted(os.listdir(frames))
    finally:
        writer.stop()


def test_external_link_resolves_when_its_file_appears(tmp_path: Path, mount: Any) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with h5py.File(src / "master.h5", "w") as f:
        f["entry/data"] = h5py.ExternalLink("data_000001.h5", "/entry/data")
    with mount(src) as mnt:
        entry = mnt / "master.h5" / "entry"
        assert os.readlink(entry / "data") == "data_000001.h5::%2Fentry%2Fdata"  # dangling form
        values = np.arange(64 * 32, dtype="<i4").reshape(2, 32, 32)
        with h5py.File(src / "data_000001.h5", "w") as f:
            f["entry/data"] = values
        seen = poll(lambda: np.load(entry / "data.npy"), "the external link resolved")
        with h5py.File(src / "master.h5", "r") as f:
            assert np.array_equal(seen, f["entry/data"][()])


def mount_pid(mnt: Path) -> int:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(mnt).encode() in args and b"mount" in args:
            return int(pid)
    raise AssertionError("mount process not found")


def test_four_readers_during_an_acquisition(tmp_path: Path, mount: Any) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with mount(src, "--cache-size", "32M") as mnt:
        swmr, spec = Writer("swmr", src / "live.h5"), Writer("spec", src / "live.spec")
        errors: list[str] = []
        done = threading.Event()
        entry = mnt / "live.h5" / "entry"
        column = mnt / "live.spec" / "1.1" / "measurement" / "y.txt"
        poll(lambda: (entry / "counter.npy").exists() or None, "the SWMR file")
        poll(lambda: column.exists() or None, "the SPEC column")
        tail = subprocess.Popen(["tail", "-n", "+1", "-s", "0.1", "-f", str(column)], stdout=subprocess.PIPE, text=True)
        tailed: list[str] = []
        threading.Thread(target=lambda: tailed.extend(iter(tail.stdout.readline, "")), daemon=True).start()  # type: ignore[union-attr]

        def guard(fn: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                while not done.is_set():
                    try:
                        fn()
                    except Exception as exc:  # noqa: BLE001 - collected, the test fails on any
                        errors.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")
                        return
            return run

        def numpy_mmap() -> None:
            frames_seen(entry / "data.npy")

        def cat_counter() -> None:
            text = subprocess.run(["cat", str(entry / "counter.txt")], capture_output=True, text=True, check=True).stdout
            values = [float(v) for v in text.split()]
            assert values == [k * 0.5 for k in range(len(values))], values

        def cat_npy() -> None:
            raw = subprocess.run(["cat", str(entry / "data.npy")], capture_output=True, check=True).stdout
            try:
                with NPY_HEADER:
                    a = np.load(io.BytesIO(raw))
            except ValueError as exc:  # the size the kernel had was older than the header
                assert any(words in str(exc) for words in STALE_SIZE), exc
                return
            assert all((a[k] == k).all() for k in range(len(a))), "torn frame through cat"

        threads = [threading.Thread(target=guard(fn)) for fn in (numpy_mmap, cat_counter, cat_npy)]
        for t in threads:
            t.start()
        try:
            for _ in range(12):
                n = swmr.step()
                m = spec.step()
            poll(lambda: len(tailed) >= m or None, "tail -f of the SPEC column")
            assert [float(v) for v in tailed] == [2.0 * k for k in range(m)]
            poll(lambda: frames_seen(entry / "data.npy") == n or None, "the last frame")
        finally:
            done.set()
            for t in threads:
                t.join()
            tail.kill()
            swmr.stop()
            spec.stop()
        assert errors == []
        rss_kb = int(next(line for line in Path(f"/proc/{mount_pid(mnt)}/status").read_text().splitlines()
                          if line.startswith("VmRSS")).split()[1])
        assert rss_kb < 400 * 1024, f"mount RSS {rss_kb} kB"
