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
from vfs.limits import MAX_PROBE_SECONDS
from vfs.logutil import log, log_once
from vfs.nodes import LIVE, ROOT_INO, Directory, Entries, File, Node, Symlink, built, if_free, make_ino
from vfs.passthrough import PassthroughFile
from vfs.probing import Probe, wait_all

STATS_NAME = ".vfs-stats"


def identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What identifies one version of a source file: device, inode, size, mtime."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class SourceDirectory(Directory):
    """A folder of the source tree, re-listed when its mtime changes."""

    def __init__(self, path: str, st: os.stat_result, ctx: Context, ino: int | None = None) -> None:
        super().__init__(ino or make_ino("src", st.st_dev, st.st_ino), st.st_mtime_ns)
        self.path = path
        self.ctx = ctx
        self._seen_mtime = st.st_mtime_ns
        self._checked = time.monotonic()
        self._previous: dict[str, Node] = {}

    def children(self) -> Mapping[str, Node]:
        now = time.monotonic()
        if now - self._checked > self.ctx.recheck_seconds:
            self._checked = now
            try:
                st = os.stat(self.path)
            except OSError:
                return {}
            if st.st_mtime_ns != self._seen_mtime:
                self._seen_mtime = self.mtime_ns = st.st_mtime_ns
                self.invalidate()
        return super().children()

    def load(self) -> Mapping[str, Node]:
        entries = Entries()
        try:
            scan = sorted(os.scandir(self.path), key=lambda e: e.name)
        except OSError as exc:
            log_once(f"scandir:{self.path}", f"{self.path}: cannot list: {exc.strerror}")
            return entries
        made: list[tuple[str, Node | Probe | None]] = []
        for entry in scan:
            try:
                made.append((entry.name, self._node_for(entry.path, self._previous.get(entry.name))))
            except OSError as exc:
                log_once(f"stat:{entry.path}", f"{entry.path}: skipped: {exc.strerror}")
        wait_all([m for _, m in made if isinstance(m, Probe)])  # side by side, each for a bounded time
        for name, made_node in made:
            node = pending_node(made_node) if isinstance(made_node, Probe) else made_node
            if node is not None:
                entries.add(name, node)
        self._previous = dict(entries)
        return entries

    def drop(self) -> bool:
        """Forget the children and the nodes kept for the next re-listing (memory bound)."""
        if not super().drop():
            return False
        self._previous = {}
        return True

    def _node_for(self, path: str, previous: Node | None) -> Node | Probe | None:
        st = os.lstat(path)
        if previous is not None and previous.ino == make_ino("src", st.st_dev, st.st_ino):
            if not isinstance(previous, DataFolder) or previous.same_source(st):
                return previous
        return node_for_path(path, st, self.ctx, deferred=True)


def pending_node(probe: Probe) -> Node:
    """A data file's entry from its probe: a folder if the probe passed, or is still
    running after ``MAX_PROBE_SECONDS`` (opened on first look, like any data file); a
    plain file if it failed or if even its first bytes were not read in that time."""
    if not probe.sniffed.is_set() or probe.backend is None:
        if not probe.sniffed.is_set():
            log_once(f"slowprobe:{probe.path}", f"{probe.path}: first bytes not read after "
                     f"{MAX_PROBE_SECONDS} s; shown as a plain file")
        return PassthroughFile(probe.path, probe.st)
    if not probe.future.done():
        log_once(f"slowprobe:{probe.path}", f"{probe.path}: still being opened after {MAX_PROBE_SECONDS} s; "
                 "shown as a folder, opened when first looked into")
        return DataFolder(probe.path, probe.st, probe.ctx, probe.backend)
    return probed_node(probe.path, probe.st, probe.ctx, probe.backend, probe.future.exception())


def probed_node(path: str, st: os.stat_result, ctx: Context, backend: Backend,
                failure: BaseException | None) -> Node:
    """A data file's entry once probed: its folder, or itself when the probe failed."""
    if failure is None:
        return DataFolder(path, st, ctx, backend)
    log_once(f"probe:{path}", f"{path}: looks like {backend.name} but cannot be opened "
             f"({type(failure).__name__}: {failure}); shown as a plain file")
    return PassthroughFile(path, st)


def node_for_path(path: str, st: os.stat_result, ctx: Context, deferred: bool = False) -> Node | Probe | None:
    """The node that shows one source path, or None for sockets, devices and FIFOs;
    ``deferred``: a regular file's kind is found in ``probing.PROBES``, left running."""
    if stat.S_ISLNK(st.st_mode):
        return Symlink(make_ino("src", st.st_dev, st.st_ino), st.st_mtime_ns, os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return SourceDirectory(path, st, ctx)
    if not stat.S_ISREG(st.st_mode):
        return None
    if deferred:
        return Probe(path, st, ctx)
    backend = backend_for(path, ctx)
    if backend is None:
        return PassthroughFile(path, st)
    try:
        backend.probe(path, ctx)
    except Exception as exc:  # shown as a plain file; the reason is logged once
        return probed_node(path, st, ctx, backend, exc)
    return DataFolder(path, st, ctx, backend)


class DataFolder(Directory):
    """A data file shown as a folder; its content is built by the file's backend."""

    def __init__(self, path: str, st: os.stat_result, ctx: Context, backend: Backend) -> None:
        super().__init__(make_ino("src", st.st_dev, st.st_ino), st.st_mtime_ns)
        self.path = path
        self.ctx = ctx
        self.backend = backend
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

    def inner(self) -> Directory | None:
        weight = 0
        with self._inner_lock:
            inner = self._inner
            if inner is None:
                try:
                    st = os.stat(self.path)
                    weight, inner = built(lambda: self.backend.open_folder(self.path, st, self.ctx, self.ino))
                    self._inner = inner
                except Exception as exc:
                    log_once(f"open:{self.path}:{self.identity}",
                             f"{self.path}: cannot open as {self.backend.name}: {type(exc).__name__}: {exc}")
                    log.debug("traceback", exc_info=True)
                    return None
        if weight:  # the file's index and top folder count in the bound on built nodes
            LIVE.add(self, weight)
        else:
            LIVE.touch(self)
        return inner

    def drop(self) -> bool:
        """Forget the opened file (its index, its tree); opened again on demand."""
        return if_free(self._inner_lock, lambda: setattr(self, "_inner", None))

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
        self.ctx = ctx
        self._snapshot = b""

    @property
    def size(self) -> int:
        return 0

    def open(self) -> None:
        data = self.ctx.cache.stats()
        data["recent_reads"] = [list(r) for r in self.ctx.recent_reads]
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
