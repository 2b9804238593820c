"""The source folder as lazy nodes: sub-folders, data files as folders, other files as
themselves. Each file's kind is decided by its first bytes (see ``formats/sniff.py``).

Folders follow their source: a listing re-scans when the source folder's mtime changed;
a data file's folder is rebuilt when the file's size or mtime changed (checked at most
every ``Context.recheck_seconds``), so files that grow during acquisition show their
new content.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from collections.abc import Mapping

from vfs.context import Context
from vfs.errors import NodeNotFound
from vfs.formats.registry import Backend, backend_for
from vfs.logutil import log, log_once
from vfs.nodes import ROOT_INO, Access, Directory, Entries, File, Node, Symlink, make_ino
from vfs.passthrough import PassthroughFile

STATS_NAME = ".vfs-stats"


def identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What identifies one version of a source file: device, inode, size, mtime."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class SourceDirectory(Directory):
    """A folder of the source tree, re-listed when its mtime changes."""

    access: Access

    def __init__(self, path: str, st: os.stat_result, ctx: Context, ino: int | None = None) -> None:
        super().__init__(ino or make_ino("src", st.st_dev, st.st_ino), st.st_mtime_ns)
        self.path = path
        self.ctx = ctx
        self.access = Access.of_source(st)
        self._seen_mtime = st.st_mtime_ns
        self._checked = time.monotonic()
        self._previous: dict[str, Node] = {}

    def _recheck(self) -> bool:
        """Re-stat the folder (at most every ``recheck_seconds``); False if it is gone."""
        now = time.monotonic()
        if now - self._checked > self.ctx.recheck_seconds:
            self._checked = now
            try:
                st = os.stat(self.path)
            except OSError:
                return False
            self.access.update(Access.of_source(st))
            if st.st_mtime_ns != self._seen_mtime:
                self._seen_mtime = self.mtime_ns = st.st_mtime_ns
                self.invalidate()
        return True

    def current_access(self) -> Access:
        self._recheck()
        return self.access

    def children(self) -> Mapping[str, Node]:
        return super().children() if self._recheck() else {}

    def load(self) -> Mapping[str, Node]:
        entries = Entries()
        try:
            scan = sorted(os.scandir(self.path), key=lambda e: e.name)
        except OSError as exc:
            log_once(f"scandir:{self.path}", f"{self.path}: cannot list: {exc.strerror}")
            return entries
        for entry in scan:
            node = self._previous.get(entry.name)
            try:
                node = self._node_for(entry.path, node)
            except OSError as exc:
                log_once(f"stat:{entry.path}", f"{entry.path}: skipped: {exc.strerror}")
                continue
            if node is not None:
                entries.add(entry.name, node)
        self._previous = dict(entries)
        return entries

    def _node_for(self, path: str, previous: Node | None) -> Node | None:
        st = os.lstat(path)
        if previous is not None and previous.ino == make_ino("src", st.st_dev, st.st_ino):
            if not isinstance(previous, DataFolder) or previous.same_source(st):
                return previous
        return node_for_path(path, st, self.ctx)


def node_for_path(path: str, st: os.stat_result, ctx: Context) -> Node | None:
    """The node that shows one source path, or None for sockets, devices and FIFOs."""
    if stat.S_ISLNK(st.st_mode):
        link = Symlink(make_ino("src", st.st_dev, st.st_ino), st.st_mtime_ns, os.readlink(path), verbatim=True)
        link.access = Access.of_source(st)
        return link
    if stat.S_ISDIR(st.st_mode):
        return SourceDirectory(path, st, ctx)
    if not stat.S_ISREG(st.st_mode):
        return None
    backend = backend_for(path, ctx)
    if backend is not None:
        try:
            backend.probe(path, ctx)
        except Exception as exc:  # shown as a plain file; the reason is logged once
            log_once(f"probe:{path}", f"{path}: looks like {backend.name} but cannot be opened "
                     f"({type(exc).__name__}: {exc}); shown as a plain file")
        else:
            return DataFolder(path, st, ctx, backend)
    return PassthroughFile(path, st)


class DataFolder(Directory):
    """A data file shown as a folder; its content is built by the file's backend."""

    access: Access

    def __init__(self, path: str, st: os.stat_result, ctx: Context, backend: Backend) -> None:
        super().__init__(make_ino("src", st.st_dev, st.st_ino), st.st_mtime_ns)
        self.path = path
        self.ctx = ctx
        self.backend = backend
        self.access = Access.of_data_file(st)  # inherited by every node the backend makes
        self.identity = identity(st)
        self._checked = time.monotonic()
        self._inner: Directory | None = None
        self._inner_lock = threading.Lock()

    def same_source(self, st: os.stat_result) -> bool:
        return identity(st) == self.identity

    def _check_source(self) -> None:
        now = time.monotonic()
        if now - self._checked <= self.ctx.recheck_seconds:
            return
        self._checked = now
        try:
            st = os.stat(self.path)
        except OSError:
            return
        self.access.update(Access.of_data_file(st))
        if identity(st) != self.identity:
            log.info("%s changed on disk; rebuilding its folder", self.path)
            self.identity = identity(st)
            self.mtime_ns = st.st_mtime_ns
            with self._inner_lock:
                inner = self._inner
                refresh = getattr(inner, "refresh", None)
                if inner is None or refresh is None or not refresh(st):  # a grown SPEC file keeps its folder
                    self._inner = None
            self.invalidate()

    def current_access(self) -> Access:
        self._check_source()
        return self.access

    def inner(self) -> Directory | None:
        with self._inner_lock:
            if self._inner is None:
                try:
                    st = os.stat(self.path)
                    self._inner = self.backend.open_folder(self.path, st, self.ctx, self.ino)
                except Exception as exc:
                    log_once(f"open:{self.path}:{self.identity}",
                             f"{self.path}: cannot open as {self.backend.name}: {type(exc).__name__}: {exc}")
                    log.debug("traceback", exc_info=True)
                    return None
            return self._inner

    def xattrs(self) -> Mapping[str, bytes]:
        inner = self.inner()
        return inner.xattrs() if inner is not None else {}

    def children(self) -> Mapping[str, Node]:
        self._check_source()
        inner = self.inner()
        return inner.children() if inner is not None else {}


class StatsFile(File):
    """``.vfs-stats`` at the mount root: cache counters as JSON, computed at each read."""

    direct_io = True

    def __init__(self, ctx: Context) -> None:
        super().__init__(make_ino("stats"), time.time_ns())
        self.access = Access(os.getuid(), os.getgid(), 0o444, 0o555)  # the mounting user's
        self.ctx = ctx
        self._snapshot = b""

    @property
    def size(self) -> int:
        return 0

    def open(self) -> None:
        data = self.ctx.cache.stats()
        data["recent_reads"] = [list(r) for r in self.ctx.recent_reads]
        data["source"] = self.ctx.source
        data["formats"] = sorted(self.ctx.formats)
        self._snapshot = json.dumps(data, indent=1, sort_keys=True).encode() + b"\n"

    def read(self, offset: int, size: int) -> bytes:
        if offset == 0 or not self._snapshot:  # a new reader: fresh counters
            self.open()
        return self._snapshot[offset : offset + size]

    @property
    def cacheable(self) -> bool:
        return False


class MountRoot(Directory):
    """The mount's root: SOURCE's folder (or a data file's folder) plus ``.vfs-stats``."""

    def __init__(self, inner: Directory, ctx: Context) -> None:
        super().__init__(ROOT_INO, inner.mtime_ns)
        self.inner = inner
        self.stats = StatsFile(ctx)
        self.ctx = ctx

    def current_access(self) -> Access | None:
        return self.inner.current_access()

    def xattrs(self) -> Mapping[str, bytes]:
        return self.inner.xattrs()

    def children(self) -> Mapping[str, Node]:
        kids = self.inner.children()
        if STATS_NAME in kids:
            return kids
        merged = dict(kids)
        merged[STATS_NAME] = self.stats
        return merged

    def child(self, name: str) -> Node:
        if name == STATS_NAME and name not in self.inner.children():
            return self.stats
        return self.inner.child(name)


def build_root(source: str, ctx: Context) -> MountRoot:
    """The root node for SOURCE (a folder, or a single data file)."""
    st = os.stat(source)
    if stat.S_ISDIR(st.st_mode):
        return MountRoot(SourceDirectory(source, st, ctx), ctx)
    node = node_for_path(source, st, ctx)
    if not isinstance(node, DataFolder):
        raise NodeNotFound(f"{source}: not a folder and not a recognised data file")
    logging.getLogger("vfs").debug("mounting single file %s", source)
    return MountRoot(node, ctx)
