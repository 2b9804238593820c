"""HDF5 memory: the mount's resident set after walking many HDF5 files with big metadata.

A folder of ``--files`` (default 140, more than the 128 files the pool once kept open)
HDF5 files, each with ``--datasets`` (default 200) gzip-chunked datasets of 64 chunks
and 10 attributes of 200 bytes, is mounted with ``--cache-size 64M``; every folder is
listed (each dataset's header read) and the first bytes of every ``.npy`` read (its
source built, its chunk offset table read, a chunk decoded). Printed: the mount's RSS
right after mounting, its peak (VmHWM) and current RSS after the walk, and the HDF5
counters of ``.vfs-stats``. With ``--baseline DIR`` (a checkout of an earlier version,
e.g. ``git archive a32bc09 | tar -x -C DIR``) the same walk runs first with that code,
in the same run, and the ratios of the two are printed.

    python scripts/bench_h5memory.py [--quick] [--files 140] [--datasets 200] [--data DIR] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vfs.harness import memory_kib, mount_pid, mounted, stats  # noqa: E402


def write(root: Path, files: int, datasets: int) -> None:
    """Files not already in ``root`` are written (the folder can be kept between runs)."""
    root.mkdir(parents=True, exist_ok=True)
    data = np.arange(64 * 64, dtype="f4").reshape(64, 64)
    for i in range(files):
        path = root / f"f{i:03d}.h5"
        if path.exists():
            continue
        with h5py.File(path.with_suffix(".tmp"), "w") as f:
            for g in range(max(datasets // 50, 1)):
                grp = f.create_group(f"g{g}")
                for d in range(min(50, datasets)):
                    ds = grp.create_dataset(f"d{d}", data=data + d, chunks=(8, 8), compression="gzip")
                    for a in range(10):
                        ds.attrs[f"a{a}"] = "x" * 200
        path.with_suffix(".tmp").rename(path)


def walk(src: Path, mnt: Path) -> dict[str, float]:
    pid = mount_pid(mnt)
    idle = memory_kib(pid, "VmRSS")
    start = time.perf_counter()
    reads = 0
    for top, _dirs, names in os.walk(mnt):
        for name in names:
            if name.endswith(".npy"):
                with open(os.path.join(top, name), "rb") as fh:
                    fh.read(4096)
                reads += 1
    seconds = time.perf_counter() - start
    return {"idle": idle / 1024, "peak": memory_kib(pid) / 1024, "now": memory_kib(pid, "VmRSS") / 1024,
            "seconds": seconds, "reads": reads}


def run(src: Path, tmp: Path, name: str, code: str | None) -> dict[str, float]:
    saved, cwd = os.environ.get("PYTHONPATH"), os.getcwd()
    if code is not None:  # ``python -m vfs`` looks in the working folder first
        os.environ["PYTHONPATH"] = code
        os.chdir(code)
    try:
        with mounted(src, tmp / f"mnt_{name}", "--cache-size", "64M", timeout=60) as mnt:
            figures = walk(src, mnt)
            counters = stats(mnt)
    finally:
        os.chdir(cwd)
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    files = counters.get("hdf5_files")
    extra = ""
    if files:
        sizes = [c["size"] for c in files["metadata_caches"]]
        extra = (f"; pool {files['open']}/{files['limit']} files, {files['opens']} opens, metadata caches "
                 f"<= {max(sizes) >> 10} KiB; tables {counters['shares']['chunk_tables']}")
    print(f"{name}: {figures['reads']:.0f} .npy read in {figures['seconds']:.1f} s; RSS idle {figures['idle']:.0f} MiB, "
          f"peak {figures['peak']:.0f} MiB, after {figures['now']:.0f} MiB (bound 364 MiB){extra}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=140)
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--data", type=Path, help="keep the generated files here")
    parser.add_argument("--baseline", help="a folder holding another version's vfs package")
    parser.add_argument("--quick", action="store_true", help="130 files of 50 datasets")
    args = parser.parse_args()
    if args.quick:
        args.files, args.datasets = 130, 50
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        src = args.data or tmp / "src"
        start = time.perf_counter()
        write(src, args.files, args.datasets)
        print(f"{args.files} files x {args.datasets} datasets ready in {time.perf_counter() - start:.0f} s", flush=True)
        base = run(src, tmp, "baseline", args.baseline) if args.baseline else None
        now = run(src, tmp, "this version", None)
        if base:
            print(f"peak RSS {now['peak'] / base['peak']:.2f}x the baseline's; growth over idle "
                  f"{(now['peak'] - now['idle']) / (base['peak'] - base['idle']):.2f}x; "
                  f"walk time {now['seconds'] / base['seconds']:.2f}x")


if __name__ == "__main__":
    main()
