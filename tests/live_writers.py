"""Writer processes for the live-acquisition tests and benchmark.

Run as ``python -m tests.live_writers KIND PATH``. Each reads one command per line on
standard input and answers one line on standard output once the data are on disk (after
the flush), ``flushed N T`` with ``T`` the ``time.monotonic()`` of the flush (one clock
for all processes on Linux, so the benchmark measures from it), so a test knows exactly
what a reader may see at each step:

* ``swmr``: an HDF5 file written with SWMR. ``frame`` appends frame N (every pixel N,
  dataset ``entry/data`` (N, 256, 128) uint16, plus ``entry/counter`` gzip float64
  N*0.5) and answers ``flushed N``; ``close`` closes the file.
* ``spec``: a SPEC file. ``point`` appends a line ``N N*2`` to scan 1 and answers
  ``flushed N``.
* ``edf``: one EDF file per frame in folder PATH. ``frame`` writes ``frame_NNNNN.edf``
  (64x32 uint16, every pixel N) in two steps, the header first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from tests.edf_files import frame_block

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAME = (256, 128)
EDF_FRAME = (64, 32)


def edf_bytes(value: int, shape: tuple[int, int] = EDF_FRAME, header_size: int = 512) -> bytes:
    """An EDF file of one uint16 frame, every pixel ``value``."""
    return frame_block(np.full(shape, value, "<u2"), {"value": value}, header_size=header_size)


class Writer:
    """A writer process driven line by line (see tests/live_writers.py)."""

    def __init__(self, kind: str, path: str | os.PathLike[str]) -> None:
        self.flushed_at = 0.0  # time.monotonic() of the last flush
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.live_writers", kind, str(path)], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.say(None) == "ready"

    def say(self, command: str | None) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def step(self, command: str = "frame") -> int:
        """Send ``command``; the number of frames (points) flushed, once they are."""
        answer = self.say(command)
        assert answer.startswith("flushed "), answer
        _, n, flushed_at = answer.split()
        self.flushed_at = float(flushed_at)
        return int(n)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def swmr(path: str) -> None:
    import h5py

    f = h5py.File(path, "w", libver="latest")
    grp = f.create_group("entry")
    data = grp.create_dataset("data", (0, *FRAME), "<u2", maxshape=(None, *FRAME), chunks=(1, *FRAME))
    counter = grp.create_dataset("counter", (0,), "<f8", maxshape=(None,), chunks=(4,), compression="gzip")
    f.swmr_mode = True
    f.flush()
    print("ready", flush=True)
    n = 0
    for line in sys.stdin:
        if line.strip() == "close":
            f.close()
            print("closed", flush=True)
            return
        data.resize(n + 1, axis=0)
        data[n] = n
        counter.resize(n + 1, axis=0)
        counter[n] = n * 0.5
        data.flush()
        counter.flush()
        n += 1
        print(f"flushed {n} {time.monotonic()}", flush=True)


def spec(path: str) -> None:
    with open(path, "w") as fh:
        fh.write("#F live.spec\n#E 1\n\n#S 1 ascan x 0 1 10 0.1\n#N 2\n#L x  y\n")
        fh.flush()
        print("ready", flush=True)
        n = 0
        for _ in sys.stdin:
            fh.write(f"{n} {n * 2}\n")
            fh.flush()
            n += 1
            print(f"flushed {n} {time.monotonic()}", flush=True)


def edf(folder: str) -> None:
    print("ready", flush=True)
    n = 0
    for _ in sys.stdin:
        blob = edf_bytes(n)
        with open(os.path.join(folder, f"frame_{n:05d}.edf"), "wb") as fh:
            fh.write(blob[:512])
            fh.flush()
            fh.write(blob[512:])
        n += 1
        print(f"flushed {n} {time.monotonic()}", flush=True)


if __name__ == "__main__":
    {"swmr": swmr, "spec": spec, "edf": edf}[sys.argv[1]](sys.argv[2])
