"""Command line: ``vfs mount SOURCE MOUNTPOINT`` and ``vfs sample FOLDER``."""

from __future__ import annotations

import argparse
import errno
import hashlib
import logging
import os
import re
import subprocess
import sys
import time

from vfs import __version__
from vfs.cache import DEFAULT_BUDGET
from vfs.limits import MAX_LIVE_NODES, NODE_BYTES

HELP = """\
Mount a folder of SPEC, EDF and HDF5/NeXus files read-only: each data file appears as a
folder, datasets as .npy/.txt/.edf files computed on demand.

Unmount with:  fusermount3 -u MOUNTPOINT   (or fusermount -u MOUNTPOINT)

Without a mount (no FUSE needed), PATH being a real path continued into the tree:
  vfs ls /data/run7/scan.h5/entry        vfs cat /data/run7/scan.h5/entry/title.txt
  vfs cp /data/run7/scan.h5/entry/data/data.npy /tmp/
  vfs tree -L 2 /data/run7/scan.h5       vfs info /data/run7/scan.h5/entry/data/data.npy
"""


def parse_size(text: str) -> int:
    """``1G``, ``512M``, ``300k``, ``1000000`` -> bytes (powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)i?[bB]?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 512M or 2G)")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def positive_int(text: str) -> int:
    """A count of at least 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def parse_options(values: list[str]) -> dict[str, object]:
    """``-o allow_other,max_read=131072`` -> {"allow_other": True, "max_read": "131072"}."""
    out: dict[str, object] = {}
    for value in values:
        for item in filter(None, value.split(",")):
            key, eq, val = item.partition("=")
            out[key] = val if eq else True
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vfs", description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"vfs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    m = sub.add_parser("mount", help="mount SOURCE at MOUNTPOINT", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("source", help="a folder (or a single data file) to show")
    m.add_argument("mountpoint", help="an existing empty folder")
    m.add_argument("-f", "--foreground", action="store_true",
                   help="stay in the foreground (Ctrl-C or SIGTERM unmounts); default: run in the background like sshfs")
    m.add_argument("-o", dest="options", action="append", default=[], metavar="OPT[,OPT...]",
                   help="FUSE mount options passed through, e.g. -o allow_other (needs user_allow_other in /etc/fuse.conf)")
    m.add_argument("--cache-size", type=parse_size, default=DEFAULT_BUDGET, metavar="SIZE",
                   help="byte budget of the decoded-chunk cache, e.g. 512M or 2G (default 1G)")
    m.add_argument("--formats", default="", metavar="NAMES",
                   help="optional backends to switch on, comma separated: 'fabio' shows every image format "
                        "fabio reads (CBF, TIFF, MarCCD, ...) as folders; otherwise those stay plain files")
    m.add_argument("--read-ahead", type=int, default=1024, metavar="KB",
                   help="kernel read-ahead of the mount in KiB (root only; default 1024). Large values give "
                        "1 MiB reads and fast streaming; 128 makes a cold random access (one spectrum of an "
                        "mmap'ed cube) read less")
    m.add_argument("--recheck", type=float, default=0.25, metavar="SECONDS",
                   help="how often a folder or data file is compared with its source to follow "
                        "files being written (default 0.25)")
    m.add_argument("--log-file", metavar="PATH",
                   help="write the log there (default: standard error with -f; in the background "
                        "$XDG_STATE_HOME/vfs/<mountpoint>-<hash>.log, printed at start)")
    m.add_argument("--allow-outside", action="append", default=[], metavar="DIR",
                   help="let files pull in bytes from DIR, outside SOURCE (HDF5 external storage and "
                        "virtual-dataset sources, EDF_BinaryFileName); repeatable. Without it such data "
                        "are listed and reading them gives 'Permission denied'")
    m.add_argument("--max-nodes", type=positive_int, default=MAX_LIVE_NODES, metavar="N",
                   help="built entries kept in memory, weighted by what they hold (default "
                        f"{MAX_LIVE_NODES}, about {MAX_LIVE_NODES * NODE_BYTES >> 20} MB); beyond, the folders "
                        "used least recently are dropped and built again when next looked at")
    m.add_argument("--debug", action="store_true", help="log every problem with its traceback, and FUSE requests")

    from vfs.cli_view import add_commands

    add_commands(sub)

    s = sub.add_parser("sample", help="write sample SPEC, EDF and HDF5/NeXus files into FOLDER")
    s.add_argument("folder")
    s.add_argument("--cube-mb", type=int, default=256, help="size of the sample cube in MB (default 256)")
    return parser


def setup_logging(log_file: str | None, debug: bool) -> None:
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s vfs %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    logging.captureWarnings(True)


def default_log_file(mountpoint: str) -> str:
    """Where a background mount logs without ``--log-file``: one file per mountpoint under
    ``$XDG_STATE_HOME/vfs`` (``~/.local/state/vfs``), named after the mountpoint."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    digest = hashlib.blake2b(os.fsencode(mountpoint), digest_size=4).hexdigest()
    name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(mountpoint.rstrip("/")) or "root")
    return os.path.join(state, "vfs", f"{name}-{digest}.log")


def check_mountpoint(path: str) -> str | None:
    """A message when the mountpoint cannot be used, else None."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOTCONN:
            return (f"{path} is a stale mount left by a vfs process that was killed.\n"
                    f"Clear it with:  fusermount3 -u {path}   (or: umount -l {path})")
        return f"{path}: {exc.strerror}"
    if not os.path.isdir(path):
        return f"{path} is not a folder"
    if os.path.ismount(path):
        return f"{path} is already a mount point (unmount it with: fusermount3 -u {path})"
    del st
    return None


def tame_malloc() -> None:
    """Keep glibc from returning and re-faulting memory on every 1 MiB read buffer:
    with its default thresholds, large reads spend their time in page faults."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 16 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
        libc.mallopt(-8, 1)  # M_ARENA_MAX: freed chunk buffers are reused, not parked per thread
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass
    # NumPy asks for transparent huge pages on arrays of 4 MiB and more (decoded chunks):
    # each then faults in as 2 MiB pages zeroed by the kernel, which was an eighth of the
    # mount's CPU while streaming bitshuffle data (perf, docs/benchmarks.md); small pages
    # of the malloc heap are reused instead. NUMPY_MADVISE_HUGEPAGE=1 keeps NumPy's way.
    if "NUMPY_MADVISE_HUGEPAGE" not in os.environ:
        try:
            from numpy._core.multiarray import _set_madvise_hugepage  # type: ignore[attr-defined]

            _set_madvise_hugepage(False)
        except ImportError:  # a NumPy without it
            pass


def cmd_mount(args: argparse.Namespace) -> int:
    source = os.path.abspath(args.source)
    mountpoint = os.path.abspath(args.mountpoint)
    if not os.path.exists(source):
        print(f"vfs: {source}: no such file or folder", file=sys.stderr)
        return 2
    problem = check_mountpoint(mountpoint)
    if problem:
        print(f"vfs: {problem}", file=sys.stderr)
        return 2
    if not args.foreground:
        if not args.log_file:
            args.log_file = default_log_file(mountpoint)
            os.makedirs(os.path.dirname(args.log_file), exist_ok=True)
        print(f"vfs: log file {args.log_file}")
        return daemonize(args, mountpoint)
    setup_logging(args.log_file, args.debug)
    tame_malloc()
    try:
        from vfs.mount import run
    except (ImportError, OSError) as exc:  # no libfuse: say so, and what works without it
        print(f"vfs: FUSE is not available here ({exc}); vfs ls/cat/cp/tree/info and the Python "
              f"and fsspec APIs work without it (see vfs --help)", file=sys.stderr)
        return 2
    from vfs import nodes
    from vfs.view import View

    nodes.LIVE.budget = args.max_nodes
    view = View(source, cache_size=args.cache_size, formats=frozenset(filter(None, args.formats.split(","))),
                allow_outside=args.allow_outside, recheck_seconds=args.recheck)
    logging.getLogger("vfs").info("mounting %s at %s (cache %d MiB)", source, mountpoint, args.cache_size >> 20)
    run(view, mountpoint, foreground=True, debug=args.debug, options=parse_options(args.options),
        read_ahead_kb=args.read_ahead)
    return 0


def daemonize(args: argparse.Namespace, mountpoint: str, timeout: float = 30.0) -> int:
    """Start a foreground mount in a new session and return once it is mounted."""
    argv = [sys.executable, "-m", "vfs", *sys.argv[1:], "--foreground", "--log-file", args.log_file]
    log_target = open(args.log_file, "ab")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_target, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.ismount(mountpoint):
            if proc.stderr:
                proc.stderr.close()
            return 0
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            print(f"vfs: mount failed (exit {proc.returncode})\n{err}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    print(f"vfs: {mountpoint} did not appear within {timeout:.0f} s", file=sys.stderr)
    proc.terminate()
    return 1


def cmd_sample(args: argparse.Namespace) -> int:
    from vfs.samples import write_samples

    for path in write_samples(args.folder, cube_mb=args.cube_mb):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "mount":
        return cmd_mount(args)
    if args.command == "sample":
        return cmd_sample(args)
    from vfs.cli_view import run

    return run(args)
