"""Real mounts in a subprocess, for the tests and the benchmarks: start ``vfs mount -f``,
wait for the mount, and always unmount and stop the process, even when the caller fails.

Nothing in the package imports this module: it drives the package from outside, as a
user would, and imports nothing of it (tests/mounting.py adds pytest's skip/fail).
"""

from __future__ import annotations

import contextlib
import ctypes.util
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def fuse_problem() -> str | None:
    """Why a real mount is impossible here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if not shutil.which("fusermount3"):
        return "fusermount3 is missing (Debian package fuse3)"
    if not ctypes.util.find_library("fuse3"):
        return "libfuse3 is missing (Debian package libfuse3-3)"
    return None


def unmount(mountpoint: Path, tool: str = "fusermount3") -> None:
    """Unmount (lazily if busy) and wait until the kernel says it is gone; ``tool`` is
    ``fusermount`` for a libfuse 2 mount."""
    for cmd in ([tool, "-u", str(mountpoint)], [tool, "-uz", str(mountpoint)]):
        if not in_mount_table(mountpoint):
            return
        subprocess.run(cmd, capture_output=True, timeout=30)
        for _ in range(100):
            if not in_mount_table(mountpoint):
                return
            time.sleep(0.05)


def in_mount_table(mountpoint: Path) -> bool:
    """Whether the kernel lists ``mountpoint`` as mounted. Unlike ``os.path.ismount`` this
    is true for a stale FUSE mount whose process died (stat gives ENOTCONN there)."""
    target = os.path.abspath(mountpoint)
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as table:
            for line in table:
                fields = line.split()
                if len(fields) > 1 and decode_mount_path(fields[1]) == target:
                    return True
    except OSError:
        return os.path.ismount(mountpoint)
    return False


def decode_mount_path(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


@contextlib.contextmanager
def mounted(source: Path | str, mountpoint: Path, *extra: str, timeout: float = 30.0,
            log_file: Path | None = None, data_limit: int | None = None) -> Iterator[Path]:
    """Mount ``source`` at ``mountpoint`` for the duration of the ``with`` block.

    RuntimeError when FUSE is missing (:func:`fuse_problem`) or the mount does not come up.
    ``data_limit`` caps the mount process's heap (RLIMIT_DATA, bytes), so a test of
    hostile input that regresses fails with ENOMEM instead of exhausting the machine.
    """
    problem = fuse_problem()
    if problem is not None:
        raise RuntimeError(f"cannot mount: {problem}")
    mountpoint.mkdir(parents=True, exist_ok=True)
    log_file = log_file or mountpoint.parent / f"{mountpoint.name}.log"
    cmd = [sys.executable, "-m", "vfs", "mount", str(source), str(mountpoint), "-f",
           "--log-file", str(log_file), *extra]
    out_file = log_file.with_suffix(".out")
    out = open(out_file, "wb")  # a file, not a pipe: a chatty mount can never block on it
    limit = None if data_limit is None else (lambda: resource.setrlimit(resource.RLIMIT_DATA, (data_limit, data_limit)))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, preexec_fn=limit)
    try:
        deadline = time.monotonic() + timeout
        while not os.path.ismount(mountpoint):
            if proc.poll() is not None:
                text = out_file.read_text(errors="replace")
                log = log_file.read_text(errors="replace") if log_file.exists() else ""
                raise RuntimeError(f"vfs exited with {proc.returncode}:\n{text}\n{log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{mountpoint} not mounted after {timeout} s")
            time.sleep(0.05)
        yield mountpoint
        if proc.poll() is not None:
            raise RuntimeError(f"the vfs process died during the test (exit {proc.returncode})")
    finally:
        unmount(mountpoint)
        stop(proc)
        out.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stats(mountpoint: Path) -> dict:
    """The mount's cache counters (``.vfs-stats`` at its root)."""
    import json

    return json.loads((mountpoint / ".vfs-stats").read_text())


def mount_pid(mountpoint: Path) -> int:
    """The process id of the ``vfs mount`` serving ``mountpoint`` (from /proc)."""
    want = os.fsencode(str(mountpoint))
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    args = fh.read().split(b"\0")
            except OSError:
                continue
            if want in args and b"mount" in args and b"vfs" in args:
                return int(entry)
    raise LookupError(f"no vfs process serves {mountpoint}")


def memory_kib(pid: int, field: str = "VmHWM") -> int:
    """A memory figure of a process in KiB (VmHWM: peak resident set; VmRSS: now)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)
