#!/usr/bin/env python3
"""The HDF5 foundation benchmark: vfs's virtual ``.npy`` against h5py on the same data.

A float32 cube (256, 256, 1024) = 256 MiB, chunks (64, 64, 256), is written in seven
layouts: contiguous, chunked uncompressed, gzip level 4 with shuffle, bitshuffle+LZ4,
LZ4, Zstd and Blosc (LZ4, byte shuffle), the last four through hdf5plugin. The data
look like a spectral map (a smooth background and peaks whose heights vary smoothly
across the map, with Poisson counting noise, stored as whole counts in float32), so the
compressors see realistic data. Files are generated once into ``--data`` and reused.

Each figure is a ratio against a baseline measured in the same run, printed with its aim:

* sequential read of ``entry/cube.npy`` through a fresh mount in 1 MiB ``os.read`` blocks
  / h5py ``ds[...]`` of the same dataset. For both, the source .h5 file is in the page
  cache (read once just before); the virtual .npy is not (caches dropped, new mount).
  Also / a plain file of the same size read the same way from the page cache. Passes
  of h5py and of the mount alternate; the best of each is kept (h5py is timed twice in
  a row each pass: a first call that allocates fresh memory can be slow on virtual
  machines, see docs/benchmarks.md). Beside it, the CPU time
  spent per byte (mount process + reader / h5py's process), which load from other
  processes on a shared machine disturbs less than wall time.
* re-read of the same .npy on the same mount (best of 3) / the first read, and / the
  plain read (best of 3 after a first read, like the re-read).
* one spectrum ``[i, j, :]`` of the .npy on the mount / h5py ``ds[i, j, :]`` on a file
  opened once; median and p99 over the same random spectra, cold (caches dropped, new
  mount or newly opened file) and warm (the same spectra again). Two ways on the mount:
  "mapped once" (``a = numpy.load(cube.npy, mmap_mode="r")`` once, then ``a[i, j, :]``,
  which is what h5py's figure is: open once, then index) and "load each time"
  (``numpy.load(cube.npy, mmap_mode="r")[i, j, :]`` per spectrum, which adds numpy's
  three opens of the file to every spectrum); and "mapped once" again on a mount with
  ``--read-ahead 128`` (a page fault reads 128 KiB around it, not 1 MiB).
* peak RSS (VmHWM) of the mount process while it streams the gzip cube with a
  ``--cache-size`` a quarter of the cube, against that budget.

Run as root (dropping the page cache needs it)::

    python scripts/bench_hdf5.py                 # 256 MiB cubes, ~5 min (+ ~1 min to generate once)
    python scripts/bench_hdf5.py --quick         # 128 MiB cubes, < 1 min once generated
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchutil import drop_caches, plain_file, read_through  # noqa: E402
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MiB = 1 << 20
GiB = 1 << 30
MB = 1_000_000
BLOCK = MiB
DATA_VERSION = 1
DATASET = "entry/cube"
CHUNKS = (64, 64, 256)


@dataclass(frozen=True)
class Size:
    shape: tuple[int, int, int]
    spectra: int
    passes: int
    rss_cache: int


FULL = Size(shape=(256, 256, 1024), spectra=200, passes=2, rss_cache=64 * MiB)
# in both, the RSS test's budget is 1/4 of the cube (the "4x --cache-size");
# a chunk row (64 x N1 x N2) is 1/4 of the full cube and 1/8 of the quick one
QUICK = Size(shape=(512, 64, 1024), spectra=50, passes=2, rss_cache=32 * MiB)
# --big: the 1 GiB cube of the first runs (only the layouts asked for are generated)
BIG = Size(shape=(512, 512, 1024), spectra=200, passes=2, rss_cache=256 * MiB)
LAYOUTS = ("contiguous", "chunked", "gzip", "bslz4", "lz4", "zstd", "blosc")
RSS_SLACK = 200 * MB

AIMS: dict[str, dict[str, float]] = {
    # figure -> layout -> aim (>= for throughput ratios, <= for latency ratios)
    "seq": {"contiguous": 0.5, "chunked": 0.6, "gzip": 2.0, "bslz4": 2.0, "lz4": 1.0, "zstd": 1.0, "blosc": 1.0},
    "reread_plain": {layout: 0.4 for layout in LAYOUTS},
    "spectrum": {layout: 2.0 for layout in LAYOUTS},
}


# --------------------------------------------------------------------------- data
def layout_options(layout: str) -> dict[str, Any]:
    import hdf5plugin

    if layout == "contiguous":
        return {}
    if layout == "chunked":
        return {"chunks": CHUNKS}
    if layout == "gzip":
        return {"chunks": CHUNKS, "compression": "gzip", "compression_opts": 4, "shuffle": True}
    if layout == "bslz4":
        return {"chunks": CHUNKS, **hdf5plugin.Bitshuffle(nelems=0, cname="lz4")}
    if layout == "lz4":
        return {"chunks": CHUNKS, **hdf5plugin.LZ4()}
    if layout == "zstd":
        return {"chunks": CHUNKS, **hdf5plugin.Zstd()}
    if layout == "blosc":
        return {"chunks": CHUNKS, **hdf5plugin.Blosc(cname="lz4", shuffle=hdf5plugin.Blosc.SHUFFLE)}
    raise ValueError(layout)


def slab(shape: tuple[int, int, int], i0: int, i1: int, rng: np.random.Generator) -> np.ndarray:
    """Rows ``i0:i1`` of the cube: a spectral map with Poisson noise, as float32 counts."""
    n0, n1, n2 = shape
    y = (np.arange(i0, i1, dtype=np.float64) / n0)[:, None, None]
    x = (np.arange(n1, dtype=np.float64) / n1)[None, :, None]
    k = np.arange(n2, dtype=np.float64)[None, None, :]
    lam = 2.0 + 30.0 * np.exp(-k / (0.3 * n2)) * (1.0 + 0.3 * np.sin(3 * x + 2 * y))
    peaks = ((0.12, 6.0, 80.0), (0.31, 10.0, 40.0), (0.47, 4.0, 120.0), (0.66, 15.0, 25.0), (0.83, 8.0, 60.0))
    for p, (centre, width, height) in enumerate(peaks):
        amp = height * (0.5 + 0.5 * np.sin(2 * np.pi * ((p + 1) * x + (2 - 0.4 * p) * y) + p)) ** 2
        lam = lam + amp * np.exp(-0.5 * ((k - centre * n2) / width) ** 2)
    return rng.poisson(lam).astype(np.float32)


def generate(folder: Path, tag: str, shape: tuple[int, int, int],
             layouts: tuple[str, ...] = LAYOUTS) -> dict[str, Path]:
    """The HDF5 files of one cube (written once; reused while their version matches)."""
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    paths = {layout: folder / f"cube-{tag}-{layout}.h5" for layout in layouts}

    def current(path: Path) -> bool:
        try:
            with h5py.File(path, "r") as f:
                ds = f[DATASET]
                return bool(ds.shape == shape and f.attrs.get("bench_version") == DATA_VERSION)
        except Exception:
            return False

    todo = [layout for layout in layouts if not current(paths[layout])]
    if not todo:
        return paths
    print(f"generating {shape} float32 cubes ({', '.join(todo)}) in {folder} ...", flush=True)
    t0 = time.perf_counter()
    tmp = {layout: paths[layout].with_suffix(".tmp") for layout in todo}
    files = {layout: h5py.File(tmp[layout], "w") for layout in todo}
    try:
        dsets = {layout: f.create_dataset(DATASET, shape=shape, dtype="float32", **layout_options(layout))
                 for layout, f in files.items()}
        rng = np.random.default_rng(2024)
        for i0 in range(0, shape[0], CHUNKS[0]):
            block = slab(shape, i0, min(i0 + CHUNKS[0], shape[0]), rng)
            for ds in dsets.values():
                ds[i0:i0 + block.shape[0]] = block
        for f in files.values():
            f.attrs["bench_version"] = DATA_VERSION
    finally:
        for f in files.values():
            f.close()
    for layout in todo:
        tmp[layout].rename(paths[layout])
    print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    return paths


# --------------------------------------------------------------------------- helpers
def mount_pid(mountpoint: Path) -> int:
    """The pid of our ``python -m vfs mount ... MOUNTPOINT`` child."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and b"vfs" in argv and b"mount" in argv and str(mountpoint).encode() in argv:
            return int(entry)
    raise RuntimeError(f"no vfs process found for {mountpoint}")


def fresh_memory_seconds() -> tuple[float, float]:
    """Seconds to allocate and fill 1 GiB of new memory, the first time and right after."""
    out = []
    for _ in range(2):
        t0 = time.perf_counter()
        block = np.ones(GiB // 8)
        out.append(time.perf_counter() - t0)
        del block
    return out[0], out[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Mounts:
    """Fresh vfs mounts of one source file, each in a subprocess (vfs/harness.py)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.count = 0

    @contextlib.contextmanager
    def mount(self, source: Path, *extra: str) -> Iterator[Path]:
        from vfs.harness import mounted

        self.count += 1
        mnt = self.work / f"mnt{self.count}"
        with mounted(source, mnt, *extra, log_file=self.work / f"mnt{self.count}.log") as m:
            yield m


# --------------------------------------------------------------------------- figures
class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, ...]] = []
        self.misses: list[str] = []

    def ratio(self, name: str, layout: str, value: float, detail: str, aim: float | None, higher: bool) -> None:
        if aim is None:
            verdict = "(no aim)"
        else:
            ok = value >= aim if higher else value <= aim
            verdict = f"{'>=' if higher else '<='} {aim:g}x  {'ok' if ok else 'MISSED'}"
            if not ok:
                self.misses.append(f"{name} [{layout}]: {value:.2f}x, aim {'>=' if higher else '<='} {aim:g}x")
        self.rows.append((name, layout, f"{value:.3f}x", verdict, detail))
        print(f"  {name:<45} {layout:<10} {value:8.3f}x  aim {verdict:<16} {detail}", flush=True)


def decodes(mnt: Path) -> int | None:
    """Chunks decoded so far by the mount (from its .vfs-stats), or None."""
    import json

    try:
        stats = json.loads((mnt / ".vfs-stats").read_text())
        # whole chunks only: not the block layouts kept for reads of parts of chunks
        return int(sum(n for label, n in stats["chunk_loads"].items() if not label.endswith(" blocks")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def sequential(paths: dict[str, Path], plain_gibs: float, mounts: Mounts, passes: int, report: Report) -> None:
    import h5py

    print(f"\nsequential read, 1 MiB os.read blocks, best of {passes} (h5py: of {2 * passes}, two in a row each "
          "time); the source .h5 is in the page cache for the mount and for h5py alike; the .npy is not "
          "(caches dropped, new mount)", flush=True)
    for layout, path in paths.items():
        h5, first, again = [], [], []
        h5_cpu, vfs_cpu = [], []
        loads = None
        for _ in range(passes):  # interleaved, so that load from elsewhere hits both sides alike
            read_through(path)  # the source file into the page cache
            with h5py.File(path, "r") as f:
                ds = f[DATASET]
                for _ in range(2):  # twice in a row: the second reuses the memory the first freed
                    c0, t0 = time.process_time(), time.perf_counter()
                    arr = ds[...]
                    h5.append(arr.nbytes / (time.perf_counter() - t0))
                    h5_cpu.append((time.process_time() - c0) / arr.nbytes)
                    del arr
            drop_caches()
            read_through(path)
            with mounts.mount(path) as mnt:
                npy = mnt / f"{DATASET}.npy"
                size = npy.stat().st_size
                pid = mount_pid(mnt)
                c0, m0 = time.process_time(), cpu_seconds(pid)
                secs, n = read_through(npy)
                vfs_cpu.append((time.process_time() - c0 + cpu_seconds(pid) - m0) / n)
                if n != size:
                    raise AssertionError(f"{layout}: read {n} bytes of {size}")
                first.append(n / secs)
                loads = decodes(mnt)
                for _ in range(3):
                    secs, n = read_through(npy)
                    again.append(n / secs)
        h5_gibs, first_gibs, again_gibs = max(h5), max(first), max(again)
        gib = lambda v: f"{v / GiB:.2f} GiB/s"  # noqa: E731
        extra = ""
        if loads is not None and layout not in ("contiguous", "chunked"):
            extra = f"; {loads} chunk decodes for {chunk_count(path)} chunks"
        report.ratio("seq .npy / h5py ds[...]", layout, first_gibs / h5_gibs,
                     f"{gib(first_gibs)} vs {gib(h5_gibs)}{extra}", AIMS["seq"].get(layout), True)
        report.ratio("CPU per byte, mount+reader / h5py", layout, min(vfs_cpu) / min(h5_cpu),
                     f"{min(vfs_cpu) * GiB:.2f} vs {min(h5_cpu) * GiB:.2f} CPU s/GiB", None, False)
        report.ratio("seq .npy / plain file in cache", layout, first_gibs / plain_gibs,
                     f"{gib(first_gibs)} vs {gib(plain_gibs)}", None, True)
        report.ratio("re-read .npy / first read", layout, again_gibs / first_gibs,
                     f"{gib(again_gibs)} vs {gib(first_gibs)}", None, True)
        report.ratio("re-read .npy / plain file in cache", layout, again_gibs / plain_gibs,
                     f"{gib(again_gibs)} vs {gib(plain_gibs)}", AIMS["reread_plain"][layout], True)


def spectra(paths: dict[str, Path], shape: tuple[int, int, int], count: int, mounts: Mounts, report: Report) -> None:
    import h5py

    rng = np.random.default_rng(11)
    picks = list(zip(rng.integers(0, shape[0], count).tolist(), rng.integers(0, shape[1], count).tolist()))
    print(f"\none spectrum [i, j, :] at {count} random (i, j), cold (caches dropped, new mount or newly "
          "opened file) then warm (the same spectra again); h5py: ds[i, j, :] on a file opened once;\n"
          "mount, mapped once: a = numpy.load(cube.npy, mmap_mode='r') once, then a[i, j, :];\n"
          "mount, load each time: numpy.load(cube.npy, mmap_mode='r')[i, j, :] for every spectrum;\n"
          "mount, mapped once, read-ahead 128: the first, mounted with --read-ahead 128 (a page fault then "
          "reads 128 KiB around it instead of 1 MiB)", flush=True)

    def timed(fetch: Callable[[int, int], np.ndarray]) -> tuple[list[float], list[np.ndarray]]:
        times, values = [], []
        for i, j in picks:
            t0 = time.perf_counter()
            values.append(fetch(i, j))
            times.append(time.perf_counter() - t0)
        return times, values

    for layout, path in paths.items():
        drop_caches()
        with h5py.File(path, "r") as f:
            ds = f[DATASET]
            h5 = {"cold": timed(lambda i, j: ds[i, j, :]), "warm": timed(lambda i, j: ds[i, j, :])}
        expected = h5["cold"][1]
        results = {}
        for variant in ("mapped once", "load each time", "mapped once, read-ahead 128"):
            drop_caches()
            extra = ("--read-ahead", "128") if "128" in variant else ()
            with mounts.mount(path, *extra) as mnt:
                npy = str(mnt / f"{DATASET}.npy")
                os.stat(npy)  # the mount builds its tree: not part of a spectrum's time
                if variant.startswith("mapped once"):
                    mapped = np.load(npy, mmap_mode="r")

                    def fetch(i: int, j: int) -> np.ndarray:
                        return np.array(mapped[i, j, :])
                else:
                    def fetch(i: int, j: int) -> np.ndarray:
                        return np.array(np.load(npy, mmap_mode="r")[i, j, :])

                results[variant] = {"cold": timed(fetch), "warm": timed(fetch)}
                mapped = None
        for variant, by_state in results.items():
            bad = sum(not np.array_equal(a, b) for a, b in zip(by_state["cold"][1], expected))
            if bad:
                raise AssertionError(f"{layout}: {bad} spectra differ between the mount and h5py")
        ms = lambda v: f"{v * 1e3:.3f} ms"  # noqa: E731
        aim = AIMS["spectrum"][layout]
        for variant, by_state in results.items():
            for state in ("cold", "warm"):
                for label, q in (("median", 0.5), ("p99", 0.99)):
                    a, b = pct(by_state[state][0], q), pct(h5[state][0], q)
                    report.ratio(f"spectrum {state} {label} / h5py, {variant}", layout, a / b,
                                 f"{ms(a)} vs {ms(b)}", aim, False)


def rss(path: Path, budget: int, mounts: Mounts, h5_gibs: float | None, report: Report) -> None:
    print(f"\npeak RSS of the mount process streaming {path.name} with --cache-size {budget >> 20}M", flush=True)
    drop_caches()
    read_through(path)
    with mounts.mount(path, "--cache-size", f"{budget >> 20}M") as mnt:
        pid = mount_pid(mnt)
        npy = mnt / f"{DATASET}.npy"
        cube = npy.stat().st_size
        idle = status_kb(pid, "VmRSS") * 1024
        secs, n = read_through(npy)
        peak = status_kb(pid, "VmHWM") * 1024
        loads = decodes(mnt)
    limit = budget + RSS_SLACK
    report.ratio("peak RSS / (budget + 200 MB)", "gzip", peak / limit,
                 f"peak {peak / MiB:.0f} MiB, budget {budget / MiB:.0f} MiB, idle {idle / MiB:.0f} MiB, "
                 f"streamed {cube / MiB:.0f} MiB ({cube / budget:.1f}x the budget)", 1.0, False)
    if loads is not None:
        report.ratio("chunk decodes / chunks in cube", "gzip", loads / chunk_count(path),
                     f"{loads} decodes with the small cache", None, False)
    if h5_gibs:
        report.ratio("seq .npy (small cache) / h5py", "gzip", n / secs / h5_gibs,
                     f"{n / secs / GiB:.2f} GiB/s vs {h5_gibs / GiB:.2f} GiB/s", AIMS["seq"]["gzip"], True)


def chunk_count(path: Path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        ds = f[DATASET]
        return int(np.prod([-(-n // c) for n, c in zip(ds.shape, ds.chunks or ds.shape)]))


def h5py_gibs(path: Path) -> float:
    import h5py

    read_through(path)
    best = 0.0
    with h5py.File(path, "r") as f:
        ds = f[DATASET]
        for _ in range(2):  # best of two in a row, as in the sequential figures
            t0 = time.perf_counter()
            arr = ds[...]
            best = max(best, arr.nbytes / (time.perf_counter() - t0))
            del arr
    return best


# --------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="128 MiB cubes, one pass, 50 spectra")
    parser.add_argument("--big", action="store_true", help="1 GiB cubes (generated for --layouts only)")
    parser.add_argument("--data", default="/tmp/vfs-bench-data", help="folder of generated files (kept)")
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated subset of " + ",".join(LAYOUTS))
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: seq,spectrum,rss")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_hdf5: run as root (dropping the page cache needs it)", file=sys.stderr)
        return 2
    from vfs.harness import fuse_problem

    problem = fuse_problem()
    if problem:
        print(f"bench_hdf5: cannot mount: {problem}", file=sys.stderr)
        return 2

    conf = QUICK if args.quick else BIG if args.big else FULL
    shape = conf.shape
    skip = set(filter(None, args.skip.split(",")))
    t_start = time.perf_counter()
    data = Path(args.data)
    wanted = tuple(args.layouts.split(","))
    all_paths = generate(data, "quick" if args.quick else "big" if args.big else "full", shape,
                         wanted if args.big else LAYOUTS)
    paths = {layout: all_paths[layout] for layout in wanted}
    nbytes = int(np.prod(shape)) * 4

    import h5py
    import hdf5plugin

    print(f"HDF5 benchmark: float32 cube {shape} = {nbytes >> 20} MiB, chunks {CHUNKS}; "
          f"h5py {h5py.__version__}, HDF5 {h5py.version.hdf5_version}, hdf5plugin {hdf5plugin.version}")
    for layout, path in paths.items():
        print(f"  {layout:<11} {path}  {path.stat().st_size / MB:8.0f} MB on disk "
              f"({nbytes / path.stat().st_size:.2f}x compression)")

    plain = plain_file(data, nbytes)
    read_through(plain)
    plain_gibs = max(nbytes / read_through(plain)[0] for _ in range(3))
    print(f"baseline: plain {nbytes >> 20} MiB file in page cache, os.read 1 MiB, best of 3: {plain_gibs / GiB:.2f} GiB/s")
    first_touch, again_touch = fresh_memory_seconds()
    print(f"context: allocating and filling 1 GiB of new memory takes {first_touch:.2f} s, {again_touch:.2f} s "
          "right after (a large gap means first touches of memory are slow here, e.g. a VM returning freed "
          "memory to its host: whoever allocates fresh memory pays it)")
    print("load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()) + f" ({os.cpu_count()} CPUs)")

    report = Report()
    with tempfile.TemporaryDirectory(prefix="vfs-bench-hdf5-") as tmp:
        mounts = Mounts(Path(tmp))
        if "seq" not in skip:
            sequential(paths, plain_gibs, mounts, conf.passes, report)
        if "spectrum" not in skip:
            spectra(paths, shape, conf.spectra, mounts, report)
        if "rss" not in skip and "gzip" in all_paths:
            gz = all_paths["gzip"]
            rss(gz, conf.rss_cache, mounts, h5py_gibs(gz), report)

    print("load average at end: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(f"\n{len(report.rows)} figures in {time.perf_counter() - t_start:.0f} s; "
          f"{len(report.misses)} missed their aim" + (":" if report.misses else ""))
    for miss in report.misses:
        print(f"  {miss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
