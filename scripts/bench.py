#!/usr/bin/env python3
"""Run every benchmark in scripts/ (``bench_*.py``) in turn, each in its own process.

    python scripts/bench.py            # each benchmark with its own defaults
    python scripts/bench.py --quick    # --quick passed to each (a small run)
    python scripts/bench.py --only hdf5,binding

Each benchmark prints its own figures (ratios against baselines measured in the same
run). This driver adds nothing but the order, the elapsed time of each, and a summary of
exit codes. Most benchmarks drop the page cache and tune /sys, so run it as root.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument("--only", default="", help="comma-separated names, e.g. hdf5,binding (bench_NAME.py)")
    args = parser.parse_args()

    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        wanted = {name.strip() for name in args.only.split(",") if name.strip()}
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
    if not scripts:
        print("bench: no benchmark found", file=sys.stderr)
        return 2

    results = []
    for script in scripts:
        cmd = [sys.executable, str(script)]
        if args.quick:
            if "--quick" in script.read_text(errors="replace"):
                cmd.append("--quick")
            else:
                print(f"bench: {script.name} has no --quick; running its default", flush=True)
        print(f"\n=== {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call(cmd, cwd=HERE.parent)
        results.append((script.name, code, time.perf_counter() - t0))

    print("\n=== summary")
    for name, code, secs in results:
        print(f"  {name:<24} {'ok' if code == 0 else f'exit {code}':<8} {secs:6.0f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
