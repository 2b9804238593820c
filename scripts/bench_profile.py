"""Where the mount's CPU goes while a reader streams a cube's .npy: a perf profile in categories.

For each layout asked for, the cube of ``bench_hdf5.py`` (run that first: it writes the
cubes into ``--data``) is mounted fresh, its ``.npy`` read start to end with
``os.read(1 MiB)`` while ``perf record`` samples the mount process, and the mount's CPU
seconds per GiB (from /proc) are split by what the samples were in:

* decode       the codecs (bitshuffle, LZ4, Zstd, deflate, Blosc kernels)
* kernel copy  the kernel copying replies into the page cache and data out of files
               (``memcpy`` under ``fuse_dev_write``, ``preadv``)
* kernel zero  the kernel zeroing fresh pages for the mount's memory (first touches)
* kernel other FUSE request handling, scheduling, futexes, page faults
* user copy    ``memmove`` in the mount (chunk pieces into the reply buffer)
* python       the interpreter, NumPy and ctypes glue
* libfuse      libfuse itself
* other        everything else

The reader's own CPU seconds per GiB are shown beside them (its ``read`` copies the
pages out of the page cache), and h5py's ``ds[...]`` CPU seconds per GiB on the same
file, in the same run, as the baseline. Needs ``perf`` (Debian package ``linux-perf``)
and root. Not a test: nothing is asserted.

    python scripts/bench_profile.py [--layouts bslz4,gzip,...] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import MiB, drop_caches, read_through  # noqa: E402

DATASET = "entry/cube"
CATEGORIES = ["decode", "kernel copy", "kernel zero", "kernel other", "user copy", "python", "libfuse", "other"]
DECODERS = re.compile(r"bshuf|LZ4|ZSTD|zstd|lz4|deflate|libdeflate|blosc|inflate|_decode", re.I)


def category(dso: str, sym: str) -> str:
    if DECODERS.search(sym) or "bitshuffle" in dso or "imagecodecs" in dso or "blosc" in dso:
        return "decode"
    if "kernel" in dso:
        if "clear_page" in sym or "zero" in sym:
            return "kernel zero"
        if "memcpy" in sym or "copy" in sym:
            return "kernel copy"
        return "kernel other"
    if "libc" in dso and ("memmove" in sym or "memcpy" in sym):
        return "user copy"
    if "libfuse" in dso:
        return "libfuse"
    if "python" in dso or "numpy" in dso or "_multiarray" in dso or "ctypes" in dso or "libffi" in dso:
        return "python"
    return "other"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile(source: Path, work: Path) -> dict[str, float]:
    """Mount ``source`` fresh, stream its .npy under perf; CPU s/GiB per category."""
    from vfs.harness import mounted

    mnt = work / "mnt"
    drop_caches()
    read_through(source)  # the source in the page cache, as for h5py
    with mounted(source, mnt, log_file=work / "mount.log") as m:
        npy = m / f"{DATASET}.npy"
        os.stat(npy)
        pid = next(int(p) for p in os.listdir("/proc") if p.isdigit() and _is_mount(int(p), mnt))
        data = work / "perf.data"
        perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(pid), "-o", str(data)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        c0, r0 = cpu_seconds(pid), time.process_time()
        seconds, nbytes = read_through(npy)
        mount_cpu, reader_cpu = cpu_seconds(pid) - c0, time.process_time() - r0
        perf.send_signal(2)
        perf.wait(timeout=60)
    report = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "dso,sym",
                             "-g", "none", "--stdio"], capture_output=True, text=True).stdout
    shares: Counter[str] = Counter()
    for line in report.splitlines():
        match = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)", line)
        if match:
            shares[category(match.group(2), match.group(3))] += float(match.group(1))
    total = sum(shares.values()) or 1.0
    gib = nbytes / (1 << 30)
    out = {name: mount_cpu / gib * shares[name] / total for name in CATEGORIES}
    out["mount"] = mount_cpu / gib
    out["reader"] = reader_cpu / gib
    out["GiB/s"] = gib / seconds
    return out


def _is_mount(pid: int, mnt: Path) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"mount" in argv and str(mnt).encode() in argv and any(a.endswith(b"python") or b"python3" in a for a in argv[:1])


def h5py_cpu(source: Path) -> tuple[float, float]:
    """h5py's ds[...] of the same file, best of 3: (CPU s/GiB, GiB/s)."""
    import h5py
    import hdf5plugin  # noqa: F401  (filters)

    best = (float("inf"), 0.0)
    with h5py.File(source, "r") as f:
        ds = f[DATASET]
        for _ in range(3):
            c0, t0 = time.process_time(), time.perf_counter()
            data = ds[...]
            cpu, wall = time.process_time() - c0, time.perf_counter() - t0
            gib = data.nbytes / (1 << 30)
            del data
            if cpu / gib < best[0]:
                best = (cpu / gib, gib / wall)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layouts", default="contiguous,chunked,gzip,bslz4,lz4,zstd,blosc")
    parser.add_argument("--data", default="/tmp/vfs-bench-data")
    parser.add_argument("--size", default="full", help="which of bench_hdf5's cubes: full, quick or big")
    args = parser.parse_args()
    if shutil.which("perf") is None:
        print("perf is not installed (Debian package linux-perf)", file=sys.stderr)
        return 2
    with open("/proc/loadavg") as fh:
        print(f"load average at start: {' '.join(fh.read().split()[:3])} ({os.cpu_count()} CPUs)")
    header = ["layout", "GiB/s", "mount", *CATEGORIES, "reader", "h5py", "h5py GiB/s"]
    rows = []
    for layout in filter(None, args.layouts.split(",")):
        source = Path(args.data) / f"cube-{args.size}-{layout}.h5"
        if not source.exists():
            print(f"{source} is missing: run scripts/bench_hdf5.py first", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix="vfs-profile-") as tmp:
            got = profile(source, Path(tmp))
        h5_cpu, h5_rate = h5py_cpu(source)
        rows.append([layout, f"{got['GiB/s']:.2f}", f"{got['mount']:.2f}", *(f"{got[c]:.2f}" for c in CATEGORIES),
                     f"{got['reader']:.2f}", f"{h5_cpu:.2f}", f"{h5_rate:.2f}"])
        print(f"  {layout}: done", flush=True)
    print("\nCPU seconds per GiB of .npy streamed (mount split by perf samples), and h5py ds[...] on the same file")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    with open("/proc/loadavg") as fh:
        print(f"load average at end: {' '.join(fh.read().split()[:3])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
