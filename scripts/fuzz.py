"""Run the mount fuzz suite (tests/test_fuzz.py) with many more examples than CI does.

    python scripts/fuzz.py                 # 500 examples (each a folder of 1-12 files)
    python scripts/fuzz.py --examples 5000

Same checks as the test: the mount never dies, no file's walk takes over 5 s, good files
beside the hostile ones keep their values, peak memory under 64 MB + 300 MB. A failure
prints the smallest batch of files Hypothesis found that still fails.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=500)
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, VFS_FUZZ_EXAMPLES=str(args.examples))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_fuzz.py"]
    return subprocess.call(cmd, cwd=root, env=env)


if __name__ == "__main__":
    sys.exit(main())
