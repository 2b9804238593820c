"""``vfs ls|cat|cp|tree|info PATH``: the mount's tree from the command line, no mount needed.

PATH is a real path continued into the view: ``/data/run7/scan.h5/entry/title.txt``
is ``scan.h5/entry/title.txt`` in the view of ``/data/run7`` (the folder holding the
longest part of PATH that exists on disk). A PATH inside a live ``vfs`` mount is
mapped to that mount's SOURCE (read from the mount's ``.vfs-stats``), so the commands
read the source directly rather than through FUSE. This module never imports the
FUSE binding: the commands work where FUSE does not exist.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import posixpath
import stat as stat_module
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from vfs.nodes import Directory, Node, Symlink
from vfs.view import View, stat_of

EXAMPLES = """\
examples:
  vfs ls /data/run7/scan.h5/entry               list a group of an HDF5 file
  vfs ls -l /data/run7/run.spec/3.1/measurement  with modes, sizes and dates
  vfs cat /data/run7/scan.h5/entry/title.txt    print a virtual file
  vfs cat /data/run7/run.spec/3.1/measurement/Epoch.txt | awk '{s+=$1} END {print s}'
  vfs cp /data/run7/scan.h5/entry/data/data.npy /tmp/    copy a virtual file out
  vfs cp -r /data/run7/scan.h5/entry /tmp/entry           copy a whole folder
  vfs tree -L 2 /data/run7/scan.h5              the tree, two levels deep
  vfs info /data/run7/scan.h5/entry/data/data.npy    where the bytes come from
  vfs info ~/mnt/scan.h5/entry/data/data.npy         also inside a mount
"""

CHUNK = 1 << 20
log = logging.getLogger("vfs")


def add_commands(sub: Any) -> None:
    """Register ls, cat, cp, tree and info on the main parser's sub-parsers."""
    fmt = argparse.RawDescriptionHelpFormatter

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text,
                                                    epilog=EXAMPLES, formatter_class=fmt)
        p.add_argument("--formats", default="", metavar="NAMES", help="optional backends, as for mount (fabio)")
        p.add_argument("--debug", action="store_true", help="log every problem with its traceback")
        return p

    p = command("ls", "list a folder of the view (or show one entry)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("-l", dest="long", action="store_true", help="long listing: mode, size, date, link target")
    p.add_argument("-a", dest="all", action="store_true", help="also hidden entries (.attrs.txt, .vfs-stats)")
    p = command("cat", "write virtual files to standard output")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p = command("cp", "copy a virtual file (or, with -r, a folder) to a real DEST")
    p.add_argument("path", metavar="PATH")
    p.add_argument("dest", metavar="DEST")
    p.add_argument("-r", dest="recursive", action="store_true", help="copy folders recursively")
    p = command("tree", "draw the tree below PATH")
    p.add_argument("path", metavar="PATH")
    p.add_argument("-L", dest="depth", type=int, default=0, metavar="N", help="at most N levels (default: all)")
    p.add_argument("-a", dest="all", action="store_true", help="also hidden entries")
    p = command("info", "tell what PATH is and where its bytes come from")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="as JSON")


def run(args: argparse.Namespace) -> int:
    """Run one view command; one line on standard error and exit status 1 on failure."""
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR, format="vfs: %(message)s")
    formats = frozenset(filter(None, args.formats.split(",")))
    try:
        return COMMANDS[args.command](args, formats)
    except BrokenPipeError:  # `vfs cat ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"vfs {args.command}: {where}{exc.strerror or exc}", file=sys.stderr)
        if args.debug:
            raise
        return 1


# -- locating PATH ------------------------------------------------------------------------
def vfs_mounts() -> list[str]:
    """Mountpoints of live vfs mounts, longest first (from /proc/mounts)."""
    out = []
    try:
        with open("/proc/mounts", encoding="utf-8", errors="surrogateescape") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) >= 3 and fields[2] == "fuse.vfs":
                    out.append(fields[1].encode().decode("unicode_escape"))
    except OSError:
        pass
    return sorted(out, key=len, reverse=True)


_VIEWS: dict[tuple[str, frozenset[str]], View] = {}


def view_of(source: str, formats: frozenset[str]) -> View:
    key = (source, formats)
    if key not in _VIEWS:
        _VIEWS[key] = View(source, formats=formats)
    return _VIEWS[key]


def locate(path: str, formats: frozenset[str]) -> tuple[View, str]:
    """The view PATH belongs to, and PATH inside it."""
    full = os.path.abspath(os.path.expanduser(path))
    for mnt in vfs_mounts():
        if full == mnt or full.startswith(mnt.rstrip("/") + "/"):
            try:
                with open(os.path.join(mnt, ".vfs-stats"), encoding="utf-8") as fh:
                    stats = json.load(fh)
                source = stats["source"]
            except (OSError, ValueError, KeyError):
                raise OSError(errno.EIO, "a vfs mount without its source in .vfs-stats (an older vfs?)", mnt) from None
            inner = os.path.relpath(full, mnt)
            if not os.path.isdir(source):
                inner = posixpath.join(os.path.basename(source), inner)
            return view_of(source, formats | frozenset(stats.get("formats", []))), "" if inner == "." else inner
    prefix, rest = full, list[str]()
    while not os.path.lexists(prefix):
        prefix, name = os.path.split(prefix)
        rest.insert(0, name)
    if os.path.isdir(prefix) and not rest:
        return view_of(prefix, formats), ""
    if os.path.isdir(prefix):
        raise FileNotFoundError(2, "no such file or folder", path)
    folder, name = os.path.split(prefix)
    return view_of(folder, formats), "/".join([name, *rest])


@contextmanager
def busy(label: str, stream: TextIO = sys.stderr, delay: float = 1.0) -> Iterator[None]:
    """On a terminal, show ``label`` and the seconds spent when a step takes longer than
    ``delay`` (opening a large SPEC file indexes it)."""
    if not stream.isatty():
        yield
        return
    done = threading.Event()
    start = time.monotonic()

    def tick() -> None:
        shown = False
        while not done.wait(0.25):
            if time.monotonic() - start > delay:
                stream.write(f"\r{label} {time.monotonic() - start:.0f} s ")
                stream.flush()
                shown = True
        if shown:
            stream.write("\r\033[K")
            stream.flush()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


class Progress:
    """A byte progress bar on standard error, only when it is a terminal."""

    def __init__(self, label: str, total: int, stream: TextIO = sys.stderr) -> None:
        self.label, self.total, self.stream = label, max(total, 1), stream
        self.on = stream.isatty() and total >= 8 * CHUNK
        self.done = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.on and now - self.last > 0.1:
            self.last = now
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            rate = self.done / max(now - self.start, 1e-9) / 1e6
            self.stream.write(f"\r{self.label} [{bar:<30}] {frac:4.0%} {rate:6.0f} MB/s")
            self.stream.flush()

    def close(self) -> None:
        if self.on:
            self.stream.write("\r\033[K")
            self.stream.flush()


def resolved(path: str, formats: frozenset[str]) -> tuple[View, str, Node]:
    view, inner = locate(path, formats)
    with busy(f"vfs: opening {path}"):
        try:
            canonical, node = view.resolve(inner)
        except OSError as exc:
            raise on_path(exc, path) from None
    return view, canonical, node


def on_path(exc: OSError, path: str) -> OSError:
    """The error as the user's PATH should show it: the system's words for the errno,
    the cause for an I/O error (which file, which object, why)."""
    code = exc.errno or errno.EIO
    return OSError(code, os.strerror(code) if code != errno.EIO else (exc.strerror or str(exc)), path)


# -- commands ------------------------------------------------------------------------------
def mode_string(mode: int) -> str:
    return stat_module.filemode(mode)


def long_line(name: str, node: Node) -> str:
    st = stat_of(node)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(st.mtime_ns / 1e9))
    tail = f" -> {st.target}" if st.target is not None else ""
    return f"{mode_string(st.mode)} {st.size:>12} {when} {name}{tail}"


def cmd_ls(args: argparse.Namespace, formats: frozenset[str]) -> int:
    status = 0
    for i, path in enumerate(args.paths):
        try:
            view, canonical, node = resolved(path, formats)
        except OSError as exc:
            print(f"vfs ls: {path}: {exc.strerror}", file=sys.stderr)
            status = 1
            continue
        if len(args.paths) > 1:
            print(f"{'' if i == 0 else chr(10)}{path}:")
        if isinstance(node, Directory):
            items = [(n, c) for n, c in node.children().items() if args.all or not n.startswith(".")]
        else:
            items = [(posixpath.basename(canonical) or path, node)]
        for name, child in items:
            print(long_line(name, child) if args.long else name)
    return status


def copy_file(view: View, inner: str, out: Any, label: str) -> int:
    """Copy one virtual file into the binary stream ``out`` in 1 MiB pieces."""
    node = view.file(inner)
    total = node.size
    progress = Progress(label, total)
    done = 0
    try:
        with view.open(inner, buffering=CHUNK) as fh:
            while True:
                piece = fh.read(CHUNK)
                if not piece:
                    break
                out.write(piece)
                done += len(piece)
                progress.update(len(piece))
    finally:
        progress.close()
    return done


def cmd_cat(args: argparse.Namespace, formats: frozenset[str]) -> int:
    out = sys.stdout.buffer
    for path in args.paths:
        view, canonical, node = resolved(path, formats)
        if isinstance(node, Directory):
            raise IsADirectoryError(21, "is a folder", path)
        copy_file(view, canonical, out, f"vfs: {path}")
    out.flush()
    return 0


def cmd_cp(args: argparse.Namespace, formats: frozenset[str]) -> int:
    view, canonical, node = resolved(args.path, formats)
    name = os.path.basename(args.path.rstrip("/"))  # a link is copied under its own name, as cp does
    dest = os.path.join(args.dest, name) if os.path.isdir(args.dest) else args.dest
    if isinstance(node, Directory):
        if not args.recursive:
            raise IsADirectoryError(21, "is a folder (use cp -r)", args.path)
        copy_tree(view, canonical, dest)
        return 0
    with open(dest, "wb") as out:
        copy_file(view, canonical, out, f"vfs: {name}")
    return 0


def copy_tree(view: View, inner: str, dest: str) -> None:
    """Copy a folder: files as files, symlinks as the same symlinks."""
    os.makedirs(dest, exist_ok=True)
    for name, child in view.entries(inner).items():
        target = os.path.join(dest, name)
        below = posixpath.join(inner, name) if inner else name
        if isinstance(child, Symlink):
            if os.path.lexists(target):
                os.unlink(target)
            os.symlink(child.target_at(below), target)  # never a link that leaves the tree
        elif isinstance(child, Directory):
            copy_tree(view, below, target)
        else:
            with open(target, "wb") as out:
                copy_file(view, below, out, f"vfs: {below}")


def cmd_tree(args: argparse.Namespace, formats: frozenset[str]) -> int:
    view, canonical, node = resolved(args.path, formats)
    print(args.path)
    if isinstance(node, Directory):
        draw(node, "", 1, args)
    return 0


def draw(folder: Directory, indent: str, level: int, args: argparse.Namespace) -> None:
    if args.depth and level > args.depth:
        return
    items = [(n, c) for n, c in folder.children().items() if args.all or not n.startswith(".")]
    for i, (name, child) in enumerate(items):
        last = i == len(items) - 1
        st = stat_of(child)
        extra = f" -> {st.target}" if st.target is not None else (f"  ({st.size})" if st.kind == "file" else "")
        print(f"{indent}{'└── ' if last else '├── '}{name}{extra}")
        if isinstance(child, Directory):
            draw(child, indent + ("    " if last else "│   "), level + 1, args)


def cmd_info(args: argparse.Namespace, formats: frozenset[str]) -> int:
    from vfs.describe import describe_node

    for path in args.paths:
        view, inner = locate(path, formats)
        with busy(f"vfs: opening {path}"):
            try:
                node = view.node(inner)
            except OSError as exc:
                raise on_path(exc, path) from None
            facts = {"path": path, "view": view.source, "in view": inner, **describe_node(view, inner, node)}
        if args.json:
            print(json.dumps(facts, indent=1, default=str))
        else:
            width = max(len(k) for k in facts)
            for key, value in facts.items():
                print(f"{key + ':':<{width + 1}} {value}")
            if len(args.paths) > 1:
                print()
    return 0


COMMANDS = {"ls": cmd_ls, "cat": cmd_cat, "cp": cmd_cp, "tree": cmd_tree, "info": cmd_info}
