"""Helpers shared by the benchmarks: dropping the page cache, timing a whole-file read,
stopping a mount process."""

from __future__ import annotations

import os
import signal
import subprocess
import time

BLOCK = 1 << 20


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


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
