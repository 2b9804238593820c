"""Bounded work and memory: figures for docs/benchmarks.md ("Bounds and memory").

1. EDF per-frame metadata: a file of 20,000 frames with 30 motors; the first listing of
   ``positioners/`` (the per-frame value lists of every motor) against reading
   ``header.txt`` (every header, the indexing work it builds on), in the same mount.
2. The issue's hostile files (a SPEC scan of one 2,500,000-value line, an EDF header
   with ``Dim_900000000``): time and memory of listing them against listing a good file.
3. A ``find`` over a generated tree of SPEC files (``--entries``, default 534,312
   virtual entries) with ``--cache-size 64M``: the mount's peak RSS against the bound
   (64 MB + 300 MB) and against its RSS right after mounting.
4. A ``find`` over 200,000 *source* files in 100 folders (a tenth tiny SPEC files, a
   twentieth small HDF5 files, the rest plain files) with ``--cache-size 64M``: peak RSS
   against the bound, the source entries held at the end, and the time of listing a
   folder again after its listing was dropped against its first listing (which probed
   every file).

    python scripts/bench_bounds.py [--quick] [--only source]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vfs.harness import memory_kib, mount_pid, mounted  # noqa: E402
from tests.test_bounds import IMAGE, frame  # noqa: E402


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def edf_metadata(tmp: Path, frames: int, motors: int) -> None:
    src = tmp / "edf"
    src.mkdir()
    names = " ".join(f"m{i}" for i in range(motors))
    with open(src / "many.edf", "wb") as fh:
        for k in range(frames):
            fh.write(frame(IMAGE, motor_mne=names, motor_pos=" ".join(str(k + i) for i in range(motors)),
                           Image=k + 1))
    with mounted(src, tmp / "mnt_edf") as mnt:
        root = mnt / "many.edf"
        header = timed(lambda: (root / "header.txt").read_bytes())
        listing = timed(lambda: os.listdir(root / "scan_0" / "instrument" / "positioners"))
    print(f"EDF {frames} frames x {motors} motors: header.txt {header:.2f} s, positioners/ {listing:.2f} s "
          f"({listing / header:.2f}x the header read)")


def hostile(tmp: Path) -> None:
    src = tmp / "hostile"
    src.mkdir()
    (src / "huge.spec").write_bytes(b"#F h\n#S 1 ascan\n#N 2\n#L a  b\n" + b" ".join([b"1"] * 2_500_000) + b"\n")
    (src / "good.spec").write_bytes(b"#F g\n#S 1 ascan\n#N 2\n#L a  b\n1 2\n")
    (src / "dims.edf").write_bytes(frame(IMAGE, Dim_900000000=1))
    with mounted(src, tmp / "mnt_hostile") as mnt:
        pid = mount_pid(mnt)
        base = memory_kib(pid, "VmRSS")
        good = timed(lambda: list(os.walk(mnt / "good.spec")))
        bad = timed(lambda: (list(os.walk(mnt / "huge.spec")), os.stat(mnt / "dims.edf")))
        grown = (memory_kib(pid) - base) / 1024
    print(f"hostile SPEC + EDF: listed in {bad:.3f} s ({bad / good:.1f}x a good SPEC file), "
          f"peak memory +{grown:.0f} MiB (bound: 100 MiB)")


def spec_table(points: int) -> None:
    """Memory a parsed SPEC scan of ``points`` x 100 values holds, against its text."""
    import tracemalloc

    from vfs.formats import specparse as sp

    row = " ".join(f"{j}.125" for j in range(100)) + "\n"
    block = ("#S 1 a\n#N 100\n#L " + "  ".join(f"c{j}" for j in range(100)) + "\n" + row * points).encode()
    start = time.perf_counter()
    sp.parse_scan(block)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    scan = sp.parse_scan(block)
    held, peak = tracemalloc.get_traced_memory()
    scan.table.column(0)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    mib = 1 << 20
    print(f"SPEC scan {points} x 100 ({len(block) / mib:.0f} MiB of text): parsed in {seconds:.2f} s, holds "
          f"{held / mib:.0f} MiB ({held / len(block):.1f}x the text; peak {peak / mib:.0f} MiB), "
          f"{after / mib:.0f} MiB once a column is read")


def walk(tmp: Path, quick: bool) -> None:
    from tests import test_memory_bound as tm

    if quick:
        tm.FILES, tm.SCANS = 2, 60
    src = tmp / "tree"
    tm.write_tree(src)
    with mounted(src, tmp / "mnt_tree", "--cache-size", "64M") as mnt:
        pid = mount_pid(mnt)
        base = memory_kib(pid, "VmRSS") / 1024
        start = time.perf_counter()
        out = subprocess.run(["find", str(mnt)], capture_output=True, check=True).stdout
        seconds = time.perf_counter() - start
        peak = memory_kib(pid) / 1024
    bound = tm.BOUND / (1 << 20)
    entries = out.count(b"\n")
    print(f"find over {entries} entries in {seconds:.1f} s: peak RSS {peak:.0f} MiB "
          f"({peak / bound:.2f}x the bound of {bound:.0f} MiB; {base:.0f} MiB after mounting)")


def source_walk(tmp: Path, quick: bool) -> None:
    import h5py

    from tests.test_memory_bound import write_source_tree
    from vfs.harness import stats

    folders, per_folder = (20, 1000) if quick else (100, 2000)
    with h5py.File(tmp / "template.h5", "w") as f:
        f["entry/data"] = list(range(10))
    src = tmp / "sources"
    write_source_tree(src, folders, per_folder, (tmp / "template.h5").read_bytes())
    budget = ["--max-nodes", "20000"] if quick else []  # the quick tree fits the default: make it drop
    with mounted(src, tmp / "mnt_sources", "--cache-size", "64M", *budget) as mnt:
        pid = mount_pid(mnt)
        base = memory_kib(pid, "VmRSS") / 1024
        first = timed(lambda: os.listdir(mnt / "d000"))
        seconds = timed(lambda: subprocess.run(["find", str(mnt), "-maxdepth", "2"], capture_output=True, check=True))
        walked = stats(mnt)
        again = timed(lambda: os.listdir(mnt / "d000"))
        relisted = stats(mnt)
        peak = memory_kib(pid) / 1024
    # the same walk with a bound nothing reaches: every listing kept, as before source folders could drop
    with mounted(src, tmp / "mnt_sources_all", "--cache-size", "64M", "--max-nodes", str(1 << 40)) as mnt:
        pid = mount_pid(mnt)
        subprocess.run(["find", str(mnt), "-maxdepth", "2"], capture_output=True, check=True)
        unbounded = memory_kib(pid) / 1024
    bound = (64 << 20) + (300 << 20)
    held = walked["source_listings"]
    rebuilt = relisted["source_listings"]["listings"] - held["listings"]
    opened = relisted["file_kinds"]["sniffs"] - walked["file_kinds"]["sniffs"]
    print(f"find over {folders * per_folder} source files in {folders} folders in {seconds:.1f} s: peak RSS "
          f"{peak:.0f} MiB ({peak / (bound >> 20):.2f}x the bound of {bound >> 20} MiB, {peak / unbounded:.2f}x "
          f"the {unbounded:.0f} MiB of the same walk keeping every listing; {base:.0f} MiB after mounting); "
          f"{held['held_entries']} entries in {held['held']} listings held at the end, {held['drops']} dropped")
    print(f"listing a folder of {per_folder} files: first {first:.2f} s, again after its drop {again:.3f} s "
          f"({again / first:.2f}x the first; rebuilt {rebuilt}, files opened {opened})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller EDF file and trees")
    parser.add_argument("--only", choices=["edf", "hostile", "spec", "walk", "source"], help="run one part")
    args = parser.parse_args()
    parts = {"edf": lambda tmp: edf_metadata(tmp, 2000 if args.quick else 20000, 30),
             "hostile": hostile,
             "spec": lambda tmp: spec_table(1000 if args.quick else 10000),
             "walk": lambda tmp: walk(tmp, args.quick),
             "source": lambda tmp: source_walk(tmp, args.quick)}
    with tempfile.TemporaryDirectory(prefix="vfs-bench-bounds-") as tmp:
        for name, part in parts.items():
            if args.only in (None, name):
                part(Path(tmp))


if __name__ == "__main__":
    main()
