"""Benchmark of EDF files through the mount against fabio and silx, in one run.

    python scripts/bench_edf.py [--frames 2000] [--random 20] [--workdir DIR]

Generates a multi-frame 1024x1024 uint16 EDF (2,000 frames: about 4 GB) and a gzip
copy of it (kept in --workdir and reused by later runs), then prints each figure next
to a baseline measured in the same run, as a ratio (mount / baseline; below 1 means
the mount is faster):

* first listing of the file's folder and of ``frames/`` (after the mount root was
  listed, so the mount's own start-up is not counted) / ``fabio.open`` + ``nframes``
* a random frame (``numpy.load`` of ``frames/k.npy``, median) / fabio ``getframe(k)``
* the same frame / silx (``silx.io.open`` then ``detector_0/data[k]``), skip: --no-silx
* gzip: first frame from a fresh mount / ``fabio.open(...).data``
* gzip: random frames after it (mean per frame) / fabio ``getframe(k)`` on the gzip
  file (fabio rewinds the gzip stream for each backward jump, so its frames are timed
  until --fabio-budget seconds are spent and the mean per frame is used)

Files are read warm (from the page cache) by both sides. Timings are not assertions;
on a shared machine they drift from run to run, so compare ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vfs.harness import mounted  # noqa: E402

SHAPE = (1024, 1024)


def header(k: int) -> bytes:
    text = (f"{{\nHeaderID = EH:{k + 1:06d}:000000:000000 ;\nImage = {k + 1} ;\nByteOrder = LowByteFirst ;\n"
            f"DataType = UnsignedShort ;\nDim_1 = {SHAPE[1]} ;\nDim_2 = {SHAPE[0]} ;\n"
            f"Size = {SHAPE[0] * SHAPE[1] * 2} ;\ncount_time = 0.1 ;\nmotor_mne = samx samy ;\n"
            f"motor_pos = {k * 0.01:.4f} 1.0 ;\n").encode()
    return text + b" " * (512 - len(text) - 2) + b"}\n"


def frame_data(k: int, bases: list[np.ndarray]) -> bytes:
    frame = bases[k % len(bases)].copy()
    frame[0, :8] = np.frombuffer(np.int64(k).tobytes(), np.uint8)  # every frame differs
    return frame.tobytes()


def generate(path: Path, frames: int) -> None:
    expected = frames * (512 + SHAPE[0] * SHAPE[1] * 2)
    if path.exists() and path.stat().st_size == expected:
        return
    print(f"writing {path} ({expected / 2**30:.1f} GiB)...", flush=True)
    rng = np.random.default_rng(0)
    bases = [rng.poisson(20, SHAPE).astype(np.uint16) for _ in range(8)]
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as fh:
        for k in range(frames):
            fh.write(header(k))
            fh.write(frame_data(k, bases))
    tmp.rename(path)


def gzip_copy(src: Path, dest: Path) -> None:
    if dest.exists() and dest.stat().st_mtime >= src.stat().st_mtime:
        return
    tool = shutil.which("pigz") or shutil.which("gzip")
    print(f"compressing {src.name} with {Path(tool or 'python').name} -1...", flush=True)
    tmp = dest.with_suffix(".part")
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        if tool:
            subprocess.run([tool, "-1", "-c"], stdin=fin, stdout=fout, check=True)
        else:
            import gzip

            with gzip.GzipFile(fileobj=fout, mode="wb", compresslevel=1) as gz:
                shutil.copyfileobj(fin, gz, 16 << 20)
    tmp.rename(dest)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def row(name: str, ours: float, base: float, base_name: str) -> None:
    print(f"{name:<44} {ours * 1e3:11.1f} ms {base * 1e3:12.1f} ms  {base_name:<22} {ours / base:8.3f}", flush=True)


def frame_name(k: int, frames: int) -> str:
    return f"{k:0{max(4, len(str(frames - 1)))}d}.npy"


def bench_plain(work: Path, frames: int, ks: list[int], with_silx: bool) -> None:
    import fabio

    path = work / "plain" / "big.edf"
    t_fabio_open, img = timed(lambda: fabio.open(str(path)))
    t_nframes, _ = timed(lambda: img.nframes)  # type: ignore[attr-defined]
    fabio_frame = []
    for k in ks:
        fabio_frame.append(timed(lambda: np.asarray(img.getframe(k).data))[0])  # type: ignore[attr-defined]
    with mounted(path.parent, work / "mnt_plain") as mnt:
        folder = mnt / path.name
        os.listdir(mnt)  # the mount's own start-up (backend imports, sniffing) is not the file's listing
        t_list, _ = timed(lambda: (os.listdir(folder), os.listdir(folder / "frames")))
        ours = []
        for k in ks:
            t, arr = timed(lambda: np.load(folder / "frames" / frame_name(k, frames)))
            ours.append(t)
            assert np.asarray(arr).tobytes() == np.asarray(img.getframe(k).data).tobytes()  # type: ignore[attr-defined]
        t_one = ours[0]
    row("first listing (folder + frames/)", t_list, t_fabio_open + t_nframes, "fabio.open + nframes")
    row(f"random frame (median of {len(ks)})", statistics.median(ours), statistics.median(fabio_frame),
        "fabio getframe(k)")
    if with_silx:
        import silx.io

        def silx_frame() -> object:
            with silx.io.open(str(path)) as h5:
                return h5["scan_0/instrument/detector_0/data"][ks[0]]

        t_silx, _ = timed(silx_frame)
        row("one random frame, first read", t_one, t_silx, "silx.io.open + data[k]")


def bench_gzip(work: Path, frames: int, ks: list[int], budget: float) -> None:
    import fabio

    path = work / "gzip" / "big.edf.gz"
    t_fabio_first, img = timed(lambda: (lambda i: (i, np.asarray(i.data)))(fabio.open(str(path)))[0])
    fabio_times: list[float] = []
    spent = 0.0
    for k in ks:
        if spent > budget:
            break
        t, _ = timed(lambda: np.asarray(img.getframe(k).data))  # type: ignore[attr-defined]
        fabio_times.append(t)
        spent += t
    with mounted(path.parent, work / "mnt_gzip") as mnt:
        folder = mnt / path.name
        os.listdir(mnt)
        t_first, first = timed(lambda: np.load(folder / "frames" / frame_name(0, frames)))
        t_rand, _ = timed(lambda: [np.load(folder / "frames" / frame_name(k, frames)) for k in ks])
        stats = json.loads((mnt / ".vfs-stats").read_text())
    assert np.asarray(first).tobytes() == np.asarray(img.data).tobytes()  # type: ignore[attr-defined]
    row("gzip: first frame, fresh mount", t_first, t_fabio_first, "fabio.open(gz).data")
    row(f"gzip: random frames after it (mean of {len(ks)})", t_rand / len(ks), statistics.mean(fabio_times),
        f"fabio getframe ({len(fabio_times)} timed)")
    blocks = sum(stats["chunk_loads"].values())
    print(f"  gzip blocks decoded by the mount: {blocks} (8 MiB each; cache {stats['budget'] >> 20} MiB, "
          f"decompressed size {frames * (512 + SHAPE[0] * SHAPE[1] * 2) / 2**20:.0f} MiB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000, help="frames of 1024x1024 uint16 (default 2000: ~4 GB)")
    parser.add_argument("--random", type=int, default=20, help="random frames read through the mount (plain file)")
    parser.add_argument("--gzip-random", type=int, default=100, help="random frames after the first (gzip file)")
    parser.add_argument("--fabio-budget", type=float, default=60.0, help="seconds spent timing fabio on the gzip file")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vfs-bench-edf"))
    parser.add_argument("--no-silx", action="store_true", help="skip silx (it loads the whole stack in memory)")
    parser.add_argument("--no-gzip", action="store_true", help="skip the gzip part")
    args = parser.parse_args()
    work = args.workdir / str(args.frames)
    (work / "plain").mkdir(parents=True, exist_ok=True)
    (work / "gzip").mkdir(parents=True, exist_ok=True)
    plain = work / "plain" / "big.edf"
    generate(plain, args.frames)
    rng = random.Random(42)
    print(f"{'figure':<44} {'mount':>14} {'baseline':>15}  {'':<22} {'ratio':>8}")
    bench_plain(work, args.frames, rng.sample(range(args.frames), min(args.random, args.frames)), not args.no_silx)
    if not args.no_gzip:
        gzip_copy(plain, work / "gzip" / "big.edf.gz")
        ks = [rng.randrange(1, args.frames) for _ in range(args.gzip_random)]
        bench_gzip(work, args.frames, ks, args.fabio_budget)
    return 0


if __name__ == "__main__":
    sys.exit(main())
