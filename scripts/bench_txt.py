"""Benchmark of ``.txt`` rendering: MB/s of text, new formatter against the previous one
in the same run, in 1 MiB windows as the mount reads them, and through a real mount.

Data are realistic: spectra of counts with peaks and Poisson noise, divided by a float
monitor (so float values carry full digits), as float32 and float64; and int32 counts.

* **render**: ``TxtRendering.read`` over the whole array in 1 MiB windows (the fixed-
  width layout: arrays above 100,000 elements). Baseline: the previous formatter, Python
  ``%``-formatting with ``%+15.8e`` / ``%+24.16e`` / ``%11d``. Also the shortest-form formatter of the small
  arrays (``floattext.float_cells``) in the same fixed-width windows, for comparison.
* **mount**: the same datasets in an HDF5 file (contiguous), ``os.read(1 MiB)`` of the
  ``.txt`` through a fresh mount, start to end.

Aim (issue 9 item 4): float ``.txt`` >= 150 MB/s; integers hold theirs.

    python scripts/bench_txt.py [--quick] [--elements N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.benchutil import read_through  # noqa: E402
from vfs.harness import mounted  # noqa: E402
from vfs.arrays import MemorySource  # noqa: E402
from vfs.render.floattext import WIDTHS, float_cells  # noqa: E402
from vfs.render.txt import TxtRendering, format_elements  # noqa: E402

WINDOW = 1 << 20
OLD = {4: ("%+15.8e", 15), 8: ("%+24.16e", 24)}


def spectra(n: int, rng: np.random.Generator) -> np.ndarray:
    channels = 2048
    rows = max(n // channels, 1)
    x = np.arange(channels)
    shape = 50 + 2000 * np.exp(-0.5 * ((x - 700) / 12.0) ** 2) + 800 * np.exp(-0.5 * ((x - 1500) / 30.0) ** 2)
    counts = rng.poisson(shape, size=(rows, channels))
    monitor = rng.uniform(0.9, 1.1, size=(rows, 1))
    return (counts / monitor).reshape(-1)[:n]


def old_cells(dtype: np.dtype) -> tuple[int, object]:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        width = max(len(str(info.min)), len(str(info.max)))
        fmt = f"%{width}d"
    else:
        fmt, width = OLD[dtype.itemsize]

    def cells(values: np.ndarray) -> np.ndarray:
        convert = values.astype(np.float64) if values.dtype.kind == "f" else values
        text = ((fmt * len(values)) % tuple(convert.tolist())).encode("ascii")
        return np.frombuffer(text, np.uint8).reshape(len(values), width)

    return width, cells


def render_rate(array: np.ndarray, how: str) -> float:
    """MB/s of text made in 1 MiB windows, start to end (``how``: new, old, shortest)."""
    source = MemorySource(array, "bench")
    if how != "new":
        width, cells = old_cells(array.dtype) if how == "old" else (WIDTHS[array.dtype.itemsize], float_cells)
        step = width + 1
        per = WINDOW // step
        t0 = time.perf_counter()
        total = 0
        for e0 in range(0, array.size, per):
            total += len(format_elements(array[e0 : e0 + per], e0, 1, width, cells))  # type: ignore[arg-type]
        return total / (time.perf_counter() - t0) / 1e6
    r = TxtRendering(source)
    assert not r.short
    t0 = time.perf_counter()
    total = 0
    for offset in range(0, r.size, WINDOW):
        total += len(r.read(offset, WINDOW))
    return total / (time.perf_counter() - t0) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 million elements instead of 10 million")
    parser.add_argument("--elements", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="alternate new/old this many times; best of each")
    args = parser.parse_args()
    n = args.elements or (2_000_000 if args.quick else 10_000_000)
    rng = np.random.default_rng(0)
    data = {"float32": spectra(n, rng).astype(np.float32), "float64": spectra(n, rng),
            "int32": rng.poisson(500, n).astype(np.int32)}
    print(f"render, {n:,} elements, 1 MiB windows (best of {args.repeat}, alternating)")
    print(f"{'dtype':<8} {'new MB/s':>9} {'old MB/s':>9} {'new/old':>8} {'shortest':>9}   aim")
    for name, array in data.items():
        best = {"new": 0.0, "old": 0.0, "shortest": 0.0}
        for _ in range(args.repeat):
            for how in ("new", "old", "shortest") if array.dtype.kind == "f" else ("new", "old"):
                best[how] = max(best[how], render_rate(array, how))
        aim = ">= 150 MB/s" if array.dtype.kind == "f" else "holds"
        short = f"{best['shortest']:9.0f}" if best["shortest"] else f"{'-':>9}"
        print(f"{name:<8} {best['new']:9.0f} {best['old']:9.0f} {best['new'] / best['old']:8.2f} {short}   {aim}")

    with tempfile.TemporaryDirectory(prefix="vfs-bench-txt-") as tmp:
        folder = Path(tmp) / "src"
        folder.mkdir()
        with h5py.File(folder / "txt.h5", "w") as f:
            for name, array in data.items():
                f[name] = array
        print("\nthrough a mount, os.read(1 MiB) start to end")
        print(f"{'dtype':<8} {'MB/s':>9}")
        with mounted(folder, Path(tmp) / "mnt") as mnt:
            for name in data:
                seconds, size = read_through(mnt / "txt.h5" / f"{name}.txt")
                print(f"{name:<8} {size / seconds / 1e6:9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
