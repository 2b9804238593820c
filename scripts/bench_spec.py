"""Benchmark the SPEC backend through a real mount against silx on the same file.

    python scripts/bench_spec.py                 # 1 GB, 10,000 scans (about a minute)
    python scripts/bench_spec.py --size 100M     # a quick run

Generates a SPEC file in a temporary folder (scans numbered 1..N, every tenth with a
4,096-channel MCA spectrum per point, alternately one line and 16 values a line with
``\\`` continuations), mounts it with ``python -m vfs mount SRC MNT -f`` and prints each
figure with a baseline measured in the same run and their ratio (ours / baseline):

* first ``ls`` of the file's folder   vs  silx ``SpecFile(path)``
* one column of scan 9,000 (.npy)      vs  silx ``sf[key].data_column_by_name(label)``
* MCA spectrum k of a scan (.npy row)  vs  silx ``sf[key].mca[k]``
* append-follow latency (write of a new scan until its folder is listed)
                                       vs  silx re-opening the file to see it
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vfs.harness import mounted  # noqa: E402
from vfs.cli import parse_size  # noqa: E402

LABELS = ["Epoch", "Seconds", "th", "tth", "chi", "phi", "H", "K", "L", "I0", "I1", "I/I0",
          "mon", "det", "ring current", "temp"]
NCH = 4096


def generate(path: Path, size: int, nscans: int, seed: int = 0) -> dict[str, object]:
    """Write a SPEC file of about ``size`` bytes with ``nscans`` scans; return what it holds."""
    rng = np.random.default_rng(seed)
    pool = [" ".join(f"{v:.6g}" for v in row) + "\n" for row in rng.normal(100, 30, (4000, len(LABELS)))]
    row_bytes = sum(len(r) for r in pool) / len(pool)
    spectra = []
    for i in range(16):
        values = [str(int(v)) for v in rng.poisson(20 + 10 * i, NCH)]
        if i % 2:
            lines = [" ".join(values[j : j + 16]) for j in range(0, NCH, 16)]
            spectra.append("@A " + "\\\n ".join(lines) + "\n")
        else:
            spectra.append("@A " + " ".join(values) + "\n")
    spectrum_bytes = sum(len(s) for s in spectra) / len(spectra)
    mca_points = 12
    n_mca = nscans // 10
    mca_total = n_mca * mca_points * (row_bytes + spectrum_bytes)
    rows = max(int((size - mca_total) / max(nscans - n_mca, 1) / row_bytes), 5)
    header = ("#F bench.spec\n#E 1700000000\n#D Tue Nov 14 22:13:20 2023\n#C bench  User = bench\n"
              "#O0 mx  my  mz  sample x\n\n")
    mca_keys = []
    with open(path, "w") as fh:
        fh.write(header)
        for n in range(1, nscans + 1):
            mca = n % 10 == 0
            npts = mca_points if mca else rows
            fh.write(f"#S {n}  ascan  th 0 1  {npts} 1\n#D Tue Nov 14 22:13:20 2023\n#T 1  (Seconds)\n"
                     f"#P0 {n * 0.5} -1 2 3.25\n")
            if mca:
                mca_keys.append(f"{n}.1")
                fh.write(f"#@MCA %16C\n#@CHANN {NCH} 0 {NCH - 1} 1\n#@CALIB 0.1 0.01 0\n")
            fh.write(f"#N {len(LABELS)}\n#L {'  '.join(LABELS)}\n")
            start = (n * 37) % (len(pool) - npts)
            for i in range(npts):
                fh.write(pool[start + i])
                if mca:
                    fh.write(spectra[(n + i) % len(spectra)])
            fh.write("\n")
    return {"rows": rows, "mca_keys": mca_keys}


def timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def report(name: str, ours: float, base: float, unit: str = "s", aim: float | None = None) -> None:
    ratio = ours / base if base else float("inf")
    goal = f"  (aim <= {aim})" if aim else ""
    print(f"{name:<38} ours {ours:9.4f} {unit}   baseline {base:9.4f} {unit}   ratio {ratio:6.2f}{goal}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"), help="file size (default 1G)")
    parser.add_argument("--scans", type=int, default=10000, help="number of scans (default 10000)")
    parser.add_argument("--dir", help="where to put the temporary folder (default: the system's)")
    args = parser.parse_args()
    from silx.io.specfile import SpecFile

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench_spec_") as tmp:
        src, mnt = Path(tmp) / "src", Path(tmp) / "mnt"
        src.mkdir()
        path = src / "bench.spec"
        gen_time, info = timed(lambda: generate(path, args.size, args.scans))
        size = path.stat().st_size
        print(f"generated {size / 1e6:.0f} MB, {args.scans} scans ({info['rows']} points each; "
              f"{len(info['mca_keys'])} with {NCH}-channel MCA) in {gen_time:.1f} s")
        with open(path, "rb") as fh:  # both sides start with the file in the page cache
            while fh.read(1 << 24):
                pass
        base_open, sf = timed(lambda: SpecFile(str(path)))
        with mounted(src, mnt, timeout=60) as m:
            folder = m / "bench.spec"
            ours_ls, listing = timed(lambda: os.listdir(folder))
            assert len(listing) == args.scans, len(listing)
            report("first ls of the file's folder", ours_ls, base_open, aim=1.5)

            keys = [f"{n}.1" for n in range(min(9000, args.scans - 5), min(9000, args.scans - 5) + 5)]
            keys = [k for k in keys if k not in info["mca_keys"]][:4]
            ratios, ours_t, base_t = [], [], []
            for key in keys:
                o, col = timed(lambda: np.load(folder / key / "measurement" / "I%I0.npy"))
                b, ref = timed(lambda: sf[key].data_column_by_name("I/I0"))
                assert np.array_equal(col, ref)
                ratios.append(o / b)
                ours_t.append(o)
                base_t.append(b)
            report(f"one column of scan {keys[0]} (median of {len(keys)})", statistics.median(ours_t),
                   statistics.median(base_t), aim=2.0)

            mca_keys = [k for k in info["mca_keys"] if int(k.split(".")[0]) >= min(9000, args.scans // 2)][:4]
            ours_t, base_t = [], []
            for i, key in enumerate(mca_keys):
                k = 3 + i
                data = folder / key / "instrument" / "mca_0" / "data.npy"

                def read_row(data: Path = data, k: int = k) -> np.ndarray:
                    with open(data, "rb") as fh:
                        head = fh.read(128)
                        hlen = 10 + int.from_bytes(head[8:10], "little")
                        raw = os.pread(fh.fileno(), NCH * 8, hlen + k * NCH * 8)
                    return np.frombuffer(raw, "<f8")

                o, row = timed(read_row)
                b, ref = timed(lambda: sf[key].mca[k])
                assert np.array_equal(row, ref)
                ours_t.append(o)
                base_t.append(b)
            report(f"MCA spectrum k of scan {mca_keys[0]} (median of {len(mca_keys)})",
                   statistics.median(ours_t), statistics.median(base_t))

            n = args.scans + 1
            scan = (f"#S {n}  ascan  th 0 1  2 1\n#P0 1 2 3 4\n#N {len(LABELS)}\n#L {'  '.join(LABELS)}\n"
                    + " ".join(["1"] * len(LABELS)) + "\n\n")
            t0 = time.perf_counter()
            with open(path, "a") as fh:
                fh.write(scan)
            while f"{n}.1" not in os.listdir(folder):
                time.sleep(0.005)
            follow = time.perf_counter() - t0
            base_reopen, sf2 = timed(lambda: SpecFile(str(path)))
            assert f"{n}.1" in sf2.keys()
            report("append-follow latency (new scan listed)", follow, base_reopen)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
