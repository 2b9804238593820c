"""Helpers shared by the benchmarks: dropping the page cache, timing a whole-file read,
stopping a mount process."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vfs.harness import stop  # noqa: E402,F401  (re-exported for the benchmarks)

BLOCK = 1 << 20
MiB = 1 << 20


def drop_caches() -> None:
    """Empty the kernel's page cache (root only), so the next read is cold."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as fh:
        fh.write("3")


def read_through(path: str | os.PathLike[str], block: int = BLOCK) -> tuple[float, int]:
    """Seconds to read ``path`` start to end with os.read(block), and the bytes read."""
    fd = os.open(path, os.O_RDONLY)
    total = 0
    t0 = time.perf_counter()
    try:
        while True:
            chunk = os.read(fd, block)
            if not chunk:
                break
            total += len(chunk)
    finally:
        os.close(fd)
    return time.perf_counter() - t0, total


def plain_file(folder: Path, size: int) -> Path:
    """A plain file of ``size`` random bytes (kept between runs)."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"plain-{size >> 20}M.bin"
    if not path.exists() or path.stat().st_size != size:
        rng = np.random.default_rng(0)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            for _ in range(size // (64 * MiB)):
                fh.write(rng.bytes(64 * MiB))
            fh.write(rng.bytes(size % (64 * MiB)))
        tmp.rename(path)
    return path
