#!/usr/bin/env python3
"""Choose the FUSE binding by measurement.

A minimal read-only filesystem written against the fusepy API serves one virtual file
(``/data``, 1 GiB by default) from a bytes buffer preallocated in memory, so the figures
are those of the binding and the kernel, not of any data source. It runs in a subprocess
with each of:

* fusepy on libfuse 2 (``import fuse``),
* mfusepy on libfuse 2 (``FUSE_LIBRARY_NAME=fuse``),
* mfusepy on libfuse 3 (``FUSE_LIBRARY_NAME=fuse3``),
* the same with ``raw_fi`` and the reply copied once into libfuse's buffer, as
  vfs/mount.py does (``mfusepy-fuse3-raw``),
* pyfuse3, the low-level inode-based API (scripts/proto_pyfuse3.py; needs
  ``pip install pyfuse3``, which builds against libfuse3-dev),

each once with the mount's default read-ahead and once with
``/sys/class/bdi/<major>:<minor>/read_ahead_kb`` raised to 1024 (what vfs/mount.py does).

Per configuration it prints the sequential read throughput (``os.read`` of 1 MiB blocks,
page cache dropped first) as GiB/s and as a ratio to reading a plain file of the same
size from the page cache the same way, the largest request the read callback received,
and the median 4 KiB random-read latency, also as a ratio to the same random read of the
plain file in page cache. Every baseline is measured in the same run. Beside the
throughput, the CPU seconds per GiB of the server and the reader together, which other
load on a shared machine disturbs less than wall time.

``--adapter-source FILE`` also mounts FILE with vfs itself and with the pyfuse3 prototype
of a vfs adapter (the same tree behind the low-level API) and compares reads of
``--adapter-npy`` (default ``entry/cube.npy``) through both.

Run as root (dropping caches and writing read_ahead_kb need it)::

    python scripts/bench_binding.py            # 1 GiB file, 3 passes
    python scripts/bench_binding.py --quick    # 256 MiB file, 1 pass
"""

from __future__ import annotations

import argparse
import ctypes.util
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchutil import drop_caches, plain_file, read_through, stop  # noqa: E402
from vfs.harness import unmount  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
BLOCK = MiB
STATS_SIZE = 4096
RAISED_KB = 1024

BINDINGS = {
    # name: (module, FUSE_LIBRARY_NAME or None, libfuse shown)
    "fusepy": ("fuse", None, "2"),
    "mfusepy-fuse2": ("mfusepy", "fuse", "2"),
    "mfusepy-fuse3": ("mfusepy", "fuse3", "3"),
    # mfusepy as vfs/mount.py uses it: raw_fi, the reply copied once into libfuse's buffer
    "mfusepy-fuse3-raw": ("mfusepy", "fuse3", "3"),
    # the low-level, inode-based API (prototype in scripts/proto_pyfuse3.py): no path walk,
    # replies straight from the buffer (a memoryview, no copy in Python)
    "pyfuse3": ("pyfuse3", None, "3"),
}


# --------------------------------------------------------------------------- server
def serve(binding: str, size: int, mountpoint: str) -> None:
    """Run the in-memory filesystem in the foreground (this is the subprocess)."""
    if binding == "pyfuse3":
        from proto_pyfuse3 import serve_memory

        serve_memory(size, mountpoint, STATS_SIZE)
        return
    module, _, _ = BINDINGS[binding]
    fuse = __import__(module)
    import errno
    import stat

    import numpy as np

    data = np.random.default_rng(1).bytes(size)  # real pages, not the shared zero page
    sizes: Counter[int] = Counter()
    lock = threading.Lock()
    now = time.time()

    def stats_bytes() -> bytes:
        with lock:
            text = json.dumps({str(k): v for k, v in sizes.items()}).encode()
        return text.ljust(STATS_SIZE)[:STATS_SIZE]

    class MemFS(fuse.Operations):  # type: ignore[name-defined]
        def getattr(self, path, fh=None):
            base = {"st_uid": 0, "st_gid": 0, "st_mtime": now, "st_ctime": now, "st_atime": now}
            if path == "/":
                return dict(base, st_mode=stat.S_IFDIR | 0o555, st_nlink=2)
            if path == "/data":
                return dict(base, st_mode=stat.S_IFREG | 0o444, st_nlink=1, st_size=size)
            if path == "/stats":
                return dict(base, st_mode=stat.S_IFREG | 0o444, st_nlink=1, st_size=STATS_SIZE)
            raise fuse.FuseOSError(errno.ENOENT)

        def readdir(self, path, fh):
            return [".", "..", "data", "stats"]

        def open(self, path, flags):
            return 0

        def read(self, path, length, offset, fh):
            if path == "/stats":
                return stats_bytes()[offset:offset + length]
            with lock:
                sizes[length] += 1
            return data[offset:offset + length]

    if binding != "mfusepy-fuse3-raw":
        fuse.FUSE(MemFS(), mountpoint, foreground=True, ro=True)
        return
    import ctypes

    data_buf = bytearray(data)  # a writable buffer whose address ctypes can take
    del data
    base = ctypes.addressof(ctypes.c_char.from_buffer(data_buf))

    class RawFUSE(fuse.FUSE):  # type: ignore[name-defined]
        """The reply written straight into libfuse's buffer, as vfs/mount.py's VfsFUSE does."""

        def read(self, path, buf, size, offset, fip):
            if path == b"/stats":
                chunk = stats_bytes()[offset:offset + size]
                ctypes.memmove(buf, chunk, len(chunk))
                return len(chunk)
            with lock:
                sizes[size] += 1
            n = max(min(size, len(data_buf) - offset), 0)
            if n:
                ctypes.memmove(buf, base + offset, n)
            return n

    RawFUSE(MemFS(), mountpoint, foreground=True, ro=True, raw_fi=True)


# --------------------------------------------------------------------------- helpers
def random_reads(path: str, size: int, count: int, seed: int = 7) -> list[float]:
    """Latency (seconds) of ``count`` 4 KiB preads at distinct random aligned offsets."""
    pages = size // 4096
    offsets = [p * 4096 for p in random.Random(seed).sample(range(pages), count)]
    fd = os.open(path, os.O_RDONLY)
    out = []
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for off in offsets:
            t0 = time.perf_counter()
            os.pread(fd, 4096, off)
            out.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_mounted(proc: subprocess.Popen[bytes], mnt: Path, name: str, timeout: float = 60.0) -> None:
    """Wait until ``mnt`` is a mount point; raise if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not os.path.ismount(mnt):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not mount")
        time.sleep(0.05)


def bdi_path(mountpoint: str) -> str:
    dev = os.stat(mountpoint).st_dev
    return f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb"


def request_sizes(mountpoint: str) -> Counter[int]:
    text = Path(mountpoint, "stats").read_bytes().strip()
    return Counter({int(k): v for k, v in json.loads(text).items()})


def available(binding: str) -> str | None:
    """Why this binding cannot run here, or None."""
    module, lib, libfuse = BINDINGS[binding]
    if not ctypes.util.find_library("fuse3" if libfuse == "3" else "fuse"):
        return f"libfuse{libfuse} not found"
    if not shutil.which("fusermount3" if libfuse == "3" else "fusermount"):
        return "fusermount missing"
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                           env=dict(os.environ, **({"FUSE_LIBRARY_NAME": lib} if lib else {})))
    if probe.returncode:
        return f"cannot import {module}"
    return None


# --------------------------------------------------------------------------- one configuration
def measure(binding: str, raise_ra: bool, size: int, passes: int, nrandom: int, work: Path) -> dict:
    module, lib, libfuse = BINDINGS[binding]
    mnt = work / f"mnt-{binding}"
    mnt.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("FUSE_LIBRARY_NAME", None)
    if lib:
        env["FUSE_LIBRARY_NAME"] = lib
    log = open(work / f"{binding}.log", "wb")
    proc = subprocess.Popen([sys.executable, __file__, "--serve", binding, "--size", str(size), str(mnt)],
                            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_mounted(proc, mnt, f"{binding} (see {work / (binding + '.log')})")
        bdi = bdi_path(str(mnt))
        default_kb = int(Path(bdi).read_text())
        if raise_ra:
            Path(bdi).write_text(str(RAISED_KB))
        ra_kb = int(Path(bdi).read_text())
        data = str(mnt / "data")
        before = request_sizes(str(mnt))
        speeds, cpu = [], []
        for _ in range(passes):
            drop_caches()
            c0 = cpu_seconds(proc.pid) + time.process_time()
            secs, n = read_through(data)
            cpu.append((cpu_seconds(proc.pid) + time.process_time() - c0) / n * GiB)
            if n != size:
                raise RuntimeError(f"{binding}: read {n} bytes of {size}")
            speeds.append(n / secs)
        seq_sizes = request_sizes(str(mnt)) - before
        before = request_sizes(str(mnt))
        lat = []
        for k in range(passes):
            drop_caches()
            lat += random_reads(data, size, nrandom, seed=7 + k)
        rnd_sizes = request_sizes(str(mnt)) - before
        reached = sum(rnd_sizes.values())
    finally:
        unmount(mnt, "fusermount3" if libfuse == "3" else "fusermount")
        stop(proc)
        log.close()
    return {
        "binding": binding, "libfuse": libfuse, "default_ra_kb": default_kb, "ra_kb": ra_kb,
        "gibs": statistics.median(speeds) / GiB, "cpu_per_gib": statistics.median(cpu), "max_req": max(seq_sizes) if seq_sizes else 0,
        "rand_med": statistics.median(lat), "rand_p99": sorted(lat)[int(0.99 * (len(lat) - 1))],
        "rand_reached": reached, "rand_count": len(lat),
        "rand_max_req": max(rnd_sizes) if rnd_sizes else 0,
    }


def adapters(source: str, npy: str, passes: int, nrandom: int, work: Path) -> None:
    """The real adapter (``python -m vfs mount``, mfusepy) against the pyfuse3 prototype
    serving the same vfs tree (scripts/proto_pyfuse3.py): sequential and random reads of
    the virtual ``npy`` (a path inside the mount), CPU of the server per GiB."""
    import numpy as np

    here = os.path.dirname(os.path.abspath(__file__))
    commands = {
        "vfs (mfusepy)": [sys.executable, "-m", "vfs", "mount", source, "{mnt}", "-f"],
        "pyfuse3 prototype": [sys.executable, os.path.join(here, "proto_pyfuse3.py"), "--vfs", source, "{mnt}"],
    }
    results = {}
    for name, command in commands.items():
        mnt = work / f"adapter-{len(results)}"
        mnt.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(Path(here).parent))
        proc = subprocess.Popen([c.replace("{mnt}", str(mnt)) for c in command], env=env, cwd=str(Path(here).parent),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_mounted(proc, mnt, name)
            Path(bdi_path(str(mnt))).write_text(str(RAISED_KB))
            path = str(mnt / npy)
            size = os.stat(path).st_size
            speeds, cpu, lat = [], [], []
            for k in range(passes):
                drop_caches()
                c0 = cpu_seconds(proc.pid)
                secs, n = read_through(path)
                cpu.append((cpu_seconds(proc.pid) - c0) / n * GiB)
                speeds.append(n / secs)
                drop_caches()
                lat += random_reads(path, size, nrandom, seed=7 + k)
            first = np.load(path, mmap_mode="r").reshape(-1)[:4096].tobytes()
            results[name] = (statistics.median(speeds), statistics.median(cpu), statistics.median(lat),
                             sorted(lat)[int(0.99 * (len(lat) - 1))], first)
        finally:
            unmount(mnt)
            stop(proc)
    (s0, c0, m0, p0, f0), (s1, c1, m1, p1, f1) = results.values()
    if f0 != f1:
        raise AssertionError("the two adapters serve different bytes")
    print(f"\nreal adapter, {npy} of {source} ({size >> 20} MiB), read_ahead_kb={RAISED_KB}, median of {passes}:")
    for name, (speed, c, med, p99, _) in results.items():
        print(f"  {name:<18} seq {speed / GiB:.2f} GiB/s, server CPU {c:.2f} s/GiB, 4K random median "
              f"{med * 1e6:.0f} us, p99 {p99 * 1e6:.0f} us")
    print(f"  pyfuse3 / mfusepy: seq {s1 / s0:.2f}x, server CPU per byte {c1 / c0:.2f}x, random median {m1 / m0:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="256 MiB file, one pass")
    parser.add_argument("--size-mb", type=int, help="size of the virtual file in MiB (default 1024)")
    parser.add_argument("--passes", type=int, help="sequential passes per configuration (median kept)")
    parser.add_argument("--data", default="/tmp/vfs-bench-data", help="folder for the plain baseline file")
    parser.add_argument("--only", default="", help="comma-separated bindings to run: " + ",".join(BINDINGS))
    parser.add_argument("--adapter-source", help="also compare the real adapter with the pyfuse3 prototype "
                        "on this data file (e.g. a contiguous HDF5 file) ...")
    parser.add_argument("--adapter-npy", default="entry/cube.npy", help="... reading this file of its folder")
    parser.add_argument("--serve", metavar="BINDING", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("mountpoint", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.size, args.mountpoint)
        return 0
    if os.geteuid() != 0:
        print("bench_binding: run as root (drop_caches and read_ahead_kb need it)", file=sys.stderr)
        return 2

    size = (args.size_mb or (256 if args.quick else 1024)) * MiB
    passes = args.passes or (1 if args.quick else 3)
    nrandom = 500 if args.quick else 1000
    bindings = [b for b in (args.only.split(",") if args.only else BINDINGS) if b]

    # baselines: the same reads of a plain file in page cache
    plain = str(plain_file(Path(args.data), size))
    read_through(plain)
    base_speed = statistics.median(size / read_through(plain)[0] for _ in range(max(passes, 3)))
    random_reads(plain, size, nrandom)
    base_lat = statistics.median(random_reads(plain, size, nrandom))
    print(f"FUSE binding benchmark: one {size >> 20} MiB file served from memory, os.read({BLOCK >> 20} MiB), "
          f"{passes} pass(es), median; {nrandom} random 4 KiB preads per pass")
    print(f"baseline: plain {size >> 20} MiB file in page cache: {base_speed / GiB:.2f} GiB/s sequential, "
          f"{base_lat * 1e6:.2f} us per random 4 KiB pread")

    rows = []
    with tempfile.TemporaryDirectory(prefix="vfs-bench-binding-") as tmp:
        for binding in bindings:
            problem = available(binding)
            if problem:
                print(f"{binding}: skipped ({problem})")
                continue
            for raise_ra in (False, True):
                rows.append(measure(binding, raise_ra, size, passes, nrandom, Path(tmp)))

    head = ("binding", "libfuse", "read_ahead_kb", "seq GiB/s", "x page cache", "CPU s/GiB", "max request",
            "4K rand median", "x page cache", "4K rand p99", "rand request")
    table = [head]
    for r in rows:
        table.append((r["binding"], r["libfuse"], f"{r['ra_kb']}" + (" (default)" if r["ra_kb"] == r["default_ra_kb"] else ""),
                      f"{r['gibs']:.2f}", f"{r['gibs'] * GiB / base_speed:.3f}x", f"{r['cpu_per_gib']:.2f}",
                      f"{r['max_req'] >> 10} KiB",
                      f"{r['rand_med'] * 1e6:.1f} us", f"{r['rand_med'] / base_lat:.0f}x", f"{r['rand_p99'] * 1e6:.1f} us",
                      f"{r['rand_max_req'] >> 10} KiB"))
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    print()
    for k, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    for r in rows:
        if r["rand_reached"] < r["rand_count"]:
            print(f"note: {r['binding']} ra={r['ra_kb']}: only {r['rand_reached']} of {r['rand_count']} random reads "
                  "reached the callback")
    if args.adapter_source:
        with tempfile.TemporaryDirectory(prefix="vfs-bench-adapter-") as tmp:
            adapters(args.adapter_source, args.adapter_npy, passes, nrandom, Path(tmp))
    if rows:
        best = max(rows, key=lambda r: r["gibs"])
        print(f"\nfastest sequential: {best['binding']} (libfuse {best['libfuse']}) with read_ahead_kb={best['ra_kb']}: "
              f"{best['gibs'] * GiB / base_speed:.3f}x the page-cache read, requests up to {best['max_req'] >> 10} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
