"""Benchmark live acquisition through a real mount: how soon readers see what writers
flushed, what a rescan costs, and whether a busy folder slows readers of other files.

    python scripts/bench_live.py               # folders of 1,000 and 100,000 files (a few minutes)
    python scripts/bench_live.py --quick       # 1,000 and 20,000 files, fewer samples
    python scripts/bench_live.py --only big    # just the 100,000-file folder (writers, small, big)

Figures (latencies from the writer's flush, ``time.monotonic()`` in the writer, to the
first poll of the reader that sees the data; the reader polls every 2 ms):

* SWMR frame: ``numpy.load(data.npy, mmap_mode="r")`` shows the new frame
* SPEC point: ``numpy.load(y.npy)`` has the new point
* new file in a folder of N files: ``os.stat`` of its name finds it, and ``os.listdir``
  lists it
* rescan of a folder of N files after one file was added (in process): the incremental
  rescan against a full re-listing (the cost before incremental rescans)
* reading an unchanged 512 KiB file (its ``data.npy``, page cache dropped with
  ``posix_fadvise`` before each read) in the N-file folder while a writer adds a file
  every 20 ms, against the same reads while the folder is quiet: the ratio
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.live_writers import Writer, edf_bytes  # noqa: E402
from vfs.harness import mounted  # noqa: E402
from vfs.context import Context  # noqa: E402
from vfs.rescan import rescan  # noqa: E402
from vfs.tree import SourceDirectory  # noqa: E402

POLL = 0.002


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"median {statistics.median(ordered) * 1e3:7.1f} ms   p99 {p99 * 1e3:7.1f} ms   (n={len(ordered)})"


def seen_after(since: float, check: Callable[[], bool], deadline: float = 10.0) -> float:
    """Seconds from ``since`` until ``check()`` is first true (errors count as not yet)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if check():
                return time.monotonic() - since
        except (OSError, ValueError):
            pass
        time.sleep(POLL)
    return float("inf")


def bench_writers(work: Path, samples: int) -> None:
    src = work / "writers"
    src.mkdir()
    with mounted(src, work / "mnt-writers"):
        mnt = work / "mnt-writers"
        swmr, spec = Writer("swmr", src / "live.h5"), Writer("spec", src / "live.spec")
        try:
            npy = mnt / "live.h5" / "entry" / "data.npy"
            col = mnt / "live.spec" / "1.1" / "measurement" / "y.npy"
            frames, points = [], []
            for _ in range(samples):
                n = swmr.step()
                frames.append(seen_after(swmr.flushed_at, lambda: np.load(npy, mmap_mode="r").shape[0] == n))
                m = spec.step()
                points.append(seen_after(spec.flushed_at, lambda: len(np.load(col)) == m))
                time.sleep(0.05)  # a writer's pace, not a race
        finally:
            swmr.stop()
            spec.stop()
    print(f"SWMR frame        {summary(frames)}")
    print(f"SPEC point        {summary(points)}")


def make_folder(folder: Path, n: int) -> None:
    """``n`` small EDF frames (kept between runs) and one 512 KiB unchanged file."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(os.listdir(folder)) >= n + 1:
        return
    blob = edf_bytes(1, (8, 8))
    for i in range(n):
        (folder / f"img_{i:06d}.edf").write_bytes(blob)
    (folder / "still.edf").write_bytes(edf_bytes(5, (512, 512)))


def read_cold(path: Path) -> float:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        t0 = time.perf_counter()
        while os.read(fd, 1 << 20):
            pass
        return time.perf_counter() - t0
    finally:
        os.close(fd)


def bench_folder(base: Path, work: Path, n: int, samples: int) -> None:
    folder = base / f"folder-{n}"
    make_folder(folder, n)
    for stale in folder.glob("new_*"):
        stale.unlink()
    mnt = work / f"mnt-{n}"
    with mounted(base, mnt, timeout=600):
        t0 = time.perf_counter()
        listed = len(os.listdir(mnt / folder.name))
        print(f"--- folder of {n:,} files: first listing {time.perf_counter() - t0:.2f} s ({listed:,} entries)")
        t0 = time.perf_counter()
        os.listdir(mnt / folder.name)
        print(f"one listing of the folder through the mount (quiet): {time.perf_counter() - t0:.3f} s "
              "(the resolution of 'listed' below)")
        still = mnt / folder.name / "still.edf" / "data.npy"
        quiet = [read_cold(still) for _ in range(samples * 2)]
        by_name, by_list = [], []
        for k in range(samples):
            name = f"new_{k:05d}.edf"
            with open(folder / name, "wb") as fh:
                fh.write(edf_bytes(k, (8, 8)))
            at = time.monotonic()
            by_name.append(seen_after(at, lambda: os.path.exists(mnt / folder.name / name)))
            name2 = f"new_list_{k:05d}.edf"
            with open(folder / name2, "wb") as fh:
                fh.write(edf_bytes(k, (8, 8)))
            at = time.monotonic()
            by_list.append(seen_after(at, lambda: name2 in os.listdir(mnt / folder.name)))
        print(f"new file, by name {summary(by_name)}")
        print(f"new file, listed  {summary(by_list)}")
        # the busy writer is another process, as a detector's would be
        blob = edf_bytes(0, (8, 8))
        code = ("import sys, time\nblob = bytes.fromhex(sys.argv[2])\ni = 0\nwhile True:\n"
                "    open(f'{sys.argv[1]}/new_busy_{i:06d}.edf', 'wb').write(blob)\n    i += 1\n    time.sleep(0.02)\n")
        writer = subprocess.Popen([sys.executable, "-c", code, str(folder), blob.hex()])
        try:
            time.sleep(1.0)  # let rescans start
            busy = []
            for _ in range(samples * 2):
                busy.append(read_cold(still))
                os.listdir(mnt / folder.name) if len(busy) % 10 == 0 else None  # someone runs ls now and then
        finally:
            writer.kill()
            writer.wait()
        q, b = statistics.median(quiet), statistics.median(busy)
        print(f"unchanged 512 KiB read: quiet {q * 1e3:.2f} ms, busy {b * 1e3:.2f} ms, ratio {b / q:.2f}x")
    for stale in folder.glob("new_*"):
        stale.unlink()
    bench_rescan(folder, n)


def bench_rescan(folder: Path, n: int) -> None:
    """In process: one incremental rescan after one new file, against a full listing."""
    ctx = Context(root=str(folder.parent))
    node = SourceDirectory(str(folder), os.stat(folder), ctx)
    t0 = time.perf_counter()
    node.children()
    full = time.perf_counter() - t0
    listing = node._listing
    (folder / "new_rescan.edf").write_bytes(edf_bytes(1, (8, 8)))
    try:
        t0 = time.perf_counter()
        new = rescan(str(folder), listing, node._build, full=True)
        inc = time.perf_counter() - t0
    finally:
        (folder / "new_rescan.edf").unlink()
    assert new is not None and "new_rescan.edf" in new.nodes
    print(f"rescan after one new file: incremental {inc * 1e3:.1f} ms, full listing {full * 1e3:.1f} ms "
          f"(ratio {inc / full:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="writers,small,big", help="comma-separated: writers, small, big")
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "vfs-bench-live"),
                        help="where the big folders are kept between runs")
    args = parser.parse_args()
    samples = 20 if args.quick else 50
    big = 20_000 if args.quick else 100_000
    base = Path(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        only = args.only.split(",")
        if "writers" in only:
            bench_writers(work, samples)
        for n, part in ((1_000, "small"), (big, "big")):
            if part in only:
                bench_folder(base / f"set-{n}", work, n, samples)


if __name__ == "__main__":
    main()
