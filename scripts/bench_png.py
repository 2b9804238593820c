"""Benchmark of PNG previews, each figure next to a baseline measured in the same run.

    python scripts/bench_png.py [--datasets 1000] [--cube-gib 1] [--workdir DIR] [--quick]

* ``ls -l`` (``os.scandir`` + ``lstat`` of every entry) of an HDF5 file's folder holding
  ``--datasets`` 64 x 64 image datasets (so as many ``.png`` entries), against ``ls -l``
  of a plain folder of the same number of files; the chunk cache's load counter shows
  that no picture was drawn for the listing;
* the first read of the preview of a 4096 x 4096 float32 frame (drawn then), against
  ``numpy.load`` of the same frame's ``.npy`` through the mount (the source bytes the
  picture needs), and a second read (from the cache);
* the preview of a 1 GiB XRF cube (512 x 512 x 1024 float32, uncompressed): summed
  counts of strided rows within the 256 MB budget, against ``numpy.memmap`` summing
  the whole cube.

Timings are not assertions; compare ratios of one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vfs.harness import mounted, stats  # noqa: E402


def ls_l(folder: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    with os.scandir(folder) as it:
        for entry in it:
            entry.stat(follow_symlinks=False)
            n += 1
    return time.perf_counter() - t0, n


def timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", type=int, default=1000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/vfs-bench-png"),
                    help="where the data are written once and reused (about 1.1 GB)")
    ap.add_argument("--cube-gib", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="200 datasets and a 0.25 GiB cube")
    ap.add_argument("--listing", action="store_true", help="only the ls -l figures (no frame, no cube)")
    args = ap.parse_args()
    if args.quick:
        args.datasets, args.cube_gib = 200, 0.25
    work = args.workdir / ("quick" if args.quick else "full")
    src = work / "src"
    plain = work / "plain"
    src.mkdir(parents=True, exist_ok=True)
    plain.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    if not (src / "many.h5").exists():
        with h5py.File(src / "many.h5", "w") as f:
            for i in range(args.datasets):
                f[f"img{i:04d}"] = rng.integers(0, 1000, (64, 64), dtype=np.uint16)
        for i in range(args.datasets * 5):  # the mount shows 5 entries per dataset
            (plain / f"f{i:05d}").write_bytes(b"x")
    if args.listing:
        listing_only(src, plain, work / "mnt", args.datasets)
        return
    if not (src / "frame.h5").exists():
        with h5py.File(src / "frame.h5", "w") as f:
            f["frame"] = rng.random((4096, 4096), dtype=np.float32)
    channels = 1024
    side = int((args.cube_gib * (1 << 30) / 4 / channels) ** 0.5)
    if not (src / "cube.h5").exists():
        with h5py.File(src / "cube.h5", "w") as f:
            ds = f.create_dataset("cube", (side, side, channels), np.float32)
            for r in range(0, side, 32):
                ds[r : r + 32] = rng.poisson(1.0, (min(32, side - r), side, channels)).astype(np.float32)
    mnt = work / "mnt"
    with mounted(src, mnt) as m:
        listing(m, plain, args.datasets)
        t_npy, _ = timed(lambda: np.load(m / "frame.h5/frame.npy"))
        t_png, _ = timed(lambda: (m / "frame.h5/frame.png").read_bytes())
        t_again, _ = timed(lambda: (m / "frame.h5/frame.png").read_bytes())
        print(f"4096x4096 float32 preview: first {t_png:.3f} s, again {t_again:.3f} s; "
              f"numpy.load of its .npy {t_npy:.3f} s; ratio first/npy {t_png / t_npy:.2f}x")
        t_cube, raw = timed(lambda: (m / "cube.h5/cube.png").read_bytes())
        from PIL import Image
        import io
        text = Image.open(io.BytesIO(raw)).text["Description"].strip()  # type: ignore[attr-defined]
    t_mem, _ = timed(lambda: np.memmap(src / "cube.h5", np.float32, "r", offset=_offset(src / "cube.h5"),
                                       shape=(side, side, channels)).sum(axis=2))
    print(f"{side}x{side}x{channels} float32 cube preview: {t_cube:.2f} s; numpy.memmap sum of the "
          f"whole cube {t_mem:.2f} s; ratio {t_cube / t_mem:.2f}x\n  ({text})")


def listing(m: Path, plain: Path, datasets: int) -> None:
    """``ls -l`` of ``many.h5`` first and again, against the plain folder."""
    os.listdir(m)
    loads = sum(stats(m)["chunk_loads"].values())
    t_ls, n = ls_l(m / "many.h5")
    t_again, _ = ls_l(m / "many.h5")
    drawn = sum(stats(m)["chunk_loads"].values()) - loads
    t_plain, n_plain = ls_l(plain)
    print(f"ls -l of {n} entries ({datasets} .png): first {t_ls:.3f} s, again {t_again:.3f} s; "
          f"plain folder of {n_plain}: {t_plain:.3f} s; ratio first/plain {t_ls / t_plain:.1f}x, "
          f"again/plain {t_again / t_plain:.1f}x; pictures drawn while listing: {drawn}")


def listing_only(src: Path, plain: Path, mnt: Path, datasets: int) -> None:
    """The ``ls -l`` figures in three fresh mounts (a first listing is a new mount's)."""
    for _ in range(3):
        with mounted(src, mnt) as m:
            listing(m, plain, datasets)


def _offset(path: Path) -> int:
    with h5py.File(path, "r") as f:
        return int(f["cube"].id.get_offset())


if __name__ == "__main__":
    main()
