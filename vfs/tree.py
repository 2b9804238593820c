"""The source folder as lazy nodes: sub-folders, data files as folders, other files as
themselves. Each file's kind is decided by its first bytes (see ``formats/sniff.py``).

Folders follow their source: a listing is rescanned, incrementally and on a background
thread (``vfs/rescan.py``), when the source folder's mtime changed; a data file's folder
is rebuilt when the file's identity (``vfs/identity.py``) changed (checked at most every
``Context.recheck_seconds``), so files that grow during acquisition show their new
content; a file that could not be opened as data yet is probed again when it changes.
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
from vfs.formats.registry import BACKENDS, Backend, backend_for, folder_backend_for
from vfs.formats.sniff import HEAD_SIZE
from vfs.limits import MAX_PROBE_SECONDS, NODE_BYTES, SOURCE_ENTRY_BYTES
from vfs.logutil import log, log_once
from vfs import nodes
from vfs.nodes import ROOT_INO, Access, Directory, Entries, File, Node, Symlink, built, charge, if_free, make_ino
from vfs.passthrough import PassthroughFile
from vfs.probing import KINDS, KindMemo, Probe, wait_all
from vfs.identity import identity
from vfs.rescan import LISTINGS, RESCANS, Listing, PendingFile, build_node, listing_weight, rescan

STATS_NAME = ".vfs-stats"
#: the largest share of time (CPU time of the rescan) a busy folder spends being rescanned ...
RESCAN_SHARE = 0.25
#: ... but it is rescanned at least this often (times recheck_seconds) while looked at
RESCAN_MAX_WAIT = 4
#: the memo's codes for files that are not data (a backend's code is its place in BACKENDS)
PLAIN, PENDING = -1, -2


class SourceDirectory(Directory):
    """A folder of the source tree; follows the source without blocking readers.

    The first listing is built in the look-up that needs it. After that, a look-up at
    most every ``recheck_seconds`` compares the folder's mtime: when it changed, or when
    some files wait to be probed again, :func:`vfs.rescan.rescan` runs on a background
    thread while readers keep the current listing, and its result is swapped in. A name
    not in the listing is looked up in the source directly (one ``lstat``), so a file
    that just appeared is found before the rescan lists it.

    The listing weighs :func:`vfs.rescan.listing_weight` in the bound on built nodes and is dropped
    like any folder's; listed again, it takes each unchanged file's kind from the memo
    (``probing.KINDS``) without opening it, and the same inode numbers (hashed from the
    source's).
    """

    access: Access

    def __init__(self, path: str, st: os.stat_result, ctx: Context, ino: int | None = None) -> None:
        super().__init__(ino or make_ino("src", st.st_dev, st.st_ino), st.st_mtime_ns)
        self.path = path
        self.ctx = ctx
        self.access = Access.of_source(st)
        self._access_checked = time.monotonic()
        self._seen_mtime = st.st_mtime_ns
        self._checked = time.monotonic()
        self._listing = Listing()
        self._rescanning = False
        self._rescan_lock = threading.Lock()
        self._rescan_seconds = 0.0  # what the last rescan cost (CPU seconds of its thread)
        #: names found by direct look-up and not yet listed: name -> (node, when found)
        self._found: dict[str, tuple[Node, float]] = {}
        #: what a client keeps with this listing (the view's readdir reply): (children, reply)
        self.kept: tuple[Mapping[str, Node], object] | None = None
        LISTINGS.register(self)

    def children(self) -> Mapping[str, Node]:
        # a folder whose rescan is costly is rescanned less often (at most RESCAN_SHARE
        # of the time); names a reader asks for are still found at once (see child)
        recheck = self.ctx.recheck_seconds
        interval = min(max(recheck, self._rescan_seconds / RESCAN_SHARE), RESCAN_MAX_WAIT * recheck)
        if self._children is not None and time.monotonic() - self._checked > interval:
            self._check_folder()
        return super().children()

    def drop(self) -> bool:
        """Forget the listing (its nodes, its snapshot, the kept readdir reply) to bound
        memory; it is built again on the next look-up, from the kinds memo."""
        def forget() -> None:
            self._children = None
            self._listing = Listing()
            self.kept = None
            LISTINGS.count("drops")
        return if_free(self._lock, forget)

    def keep(self, children: Mapping[str, Node], reply: object) -> None:
        """Keep ``reply`` (made from ``children``) with the listing while it is the
        current one; never with a listing already swapped out or dropped."""
        with self._lock:
            if self._children is children:
                self.kept = (children, reply)

    def current_access(self) -> Access:
        """The folder's owner and bits, re-read at most every ``recheck_seconds``."""
        now = time.monotonic()
        if now - self._access_checked > self.ctx.recheck_seconds:
            self._access_checked = now
            try:
                self.access.update(Access.of_source(os.stat(self.path)))
            except OSError:
                pass
        return self.access

    def _check_folder(self) -> None:
        self._checked = time.monotonic()
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError:  # the folder itself is gone: so is everything in it
            with self._lock:
                self._listing = Listing()
                self._children = self._listing.nodes
                self.kept = None
            return
        full = mtime != self._seen_mtime
        with self._rescan_lock:
            if not (full or self._listing.pending) or self._rescanning:
                return
            self._rescanning = True
            self._seen_mtime = mtime
        RESCANS.submit(self._rescan, full, mtime)

    def _rescan(self, full: bool, mtime: int) -> None:
        """Run on a rescan thread; readers keep the old listing meanwhile."""
        started, cpu = time.monotonic(), time.thread_time()
        try:
            old = self._listing
            new = rescan(self.path, old, self._build, full)
            swapped = False
            with self._lock:
                if new is not None and self._listing is old and self._children is not None:
                    self._listing = new  # (a listing dropped or rebuilt meanwhile is left as it is)
                    self._children = new.nodes
                    swapped = True
            if swapped:
                assert new is not None
                nodes.LIVE.add(self, listing_weight(len(new.nodes)))  # weighed again as it is now
            with self._rescan_lock:
                # found names are listed now, or were gone when the rescan looked
                self._found = {n: v for n, v in self._found.items() if n not in self._listing.nodes
                               and v[1] > started}
            self.mtime_ns = mtime
        except OSError as exc:
            log_once(f"scandir:{self.path}", f"{self.path}: cannot list: {exc.strerror}")
        except Exception:  # never lose the rescan flag; the reason goes to the debug log
            log.debug("rescan of %s failed", self.path, exc_info=True)
        finally:
            # its CPU time, not its wall time: waiting for the interpreter while readers
            # are served is not work to throttle (that would delay changes for nothing)
            self._rescan_seconds = time.thread_time() - cpu
            self._rescanning = False

    def _build(self, path: str, st: os.stat_result) -> Node | None:
        node = node_for_path(path, st, self.ctx)  # on a rescan thread: probed in place
        assert not isinstance(node, Probe)
        return node

    def load(self) -> Mapping[str, Node]:
        """The first listing (in the look-up that needs it: there is nothing to show yet)."""
        entries = Entries()
        inodes: dict[str, int] = {}
        try:
            scan = sorted(os.scandir(self.path), key=lambda e: e.name)
        except OSError as exc:
            log_once(f"scandir:{self.path}", f"{self.path}: cannot list: {exc.strerror}")
            return entries
        made: list[tuple[os.DirEntry[str], Node | Probe | None]] = []
        for entry in scan:
            try:
                made.append((entry, node_for_path(entry.path, entry.stat(follow_symlinks=False), self.ctx, True)))
            except OSError as exc:
                log_once(f"stat:{entry.path}", f"{entry.path}: skipped: {exc.strerror}")
        wait_all([m for _, m in made if isinstance(m, Probe)])  # side by side, each for a bounded time
        for entry, made_node in made:
            node = pending_node(made_node) if isinstance(made_node, Probe) else made_node
            if node is not None:
                entries.add(entry.name, node)
                inodes[entry.name] = entry.inode()
        self._listing = Listing.of(entries, inodes)
        charge(len(entries) * SOURCE_ENTRY_BYTES)
        LISTINGS.count("listings")
        return entries

    def child(self, name: str) -> Node:
        try:
            return self.children()[name]
        except KeyError:
            return self._look_up_new(name)

    def _look_up_new(self, name: str) -> Node:
        """A name the listing lacks: shown at once if it exists in the source now. It
        is kept aside (not merged into the listing, which would cost O(n)) until the
        next rescan lists it."""
        found = self._found.get(name)
        if found is not None:
            return found[0]
        node = build_node(self.path, name, self._build)
        if node is None:
            raise NodeNotFound(name)
        with self._rescan_lock:
            self._found = {**self._found, name: (node, time.monotonic())}
        return node


def node_for_path(path: str, st: os.stat_result, ctx: Context, deferred: bool = False) -> Node | Probe | None:
    """The node that shows one source path, or None for sockets, devices and FIFOs;
    ``deferred``: a regular file's kind is found in ``probing.PROBES`` (see
    :func:`pending_node`), so a folder's files are probed side by side."""
    if stat.S_ISLNK(st.st_mode):
        link = Symlink(make_ino("src", st.st_dev, st.st_ino), st.st_mtime_ns, os.readlink(path), verbatim=True)
        link.access = Access.of_source(st)
        return link
    if stat.S_ISDIR(st.st_mode):
        backend = folder_backend_for(path)
        if backend is not None and _probed(backend, path, ctx):
            return DataFolder(path, st, ctx, backend)
        return SourceDirectory(path, st, ctx)
    if not stat.S_ISREG(st.st_mode):
        return None
    known = remembered(path, st, ctx)
    if known is not None:
        return known
    if deferred:
        return Probe(path, st, ctx)
    KINDS.sniffed()
    backend = backend_for(path, ctx)
    failure: BaseException | None = None
    if backend is not None:
        try:
            backend.probe(path, ctx)
        except Exception as exc:  # shown as a plain file; the reason is logged once
            failure = exc
    return probed_node(path, st, ctx, backend, failure)


def remembered(path: str, st: os.stat_result, ctx: Context) -> Node | None:
    """The entry of a regular file whose kind the memo holds for this version of it
    (nothing opened), or None."""
    kind = KINDS.get(KindMemo.key(os.path.basename(path), st))
    if kind is None:
        return None
    if kind == PLAIN:
        return PassthroughFile(path, st)
    if kind == PENDING:
        return PendingFile(path, st)
    return DataFolder(path, st, ctx, BACKENDS[kind])


def probed_node(path: str, st: os.stat_result, ctx: Context, backend: Backend | None,
                failure: BaseException | None) -> Node:
    """A regular file's entry once its kind is known: its folder, or itself (the verdict
    is remembered for this version of the file)."""
    kind = PLAIN
    if backend is not None:
        kind = BACKENDS.index(backend)
        if failure is not None:
            log_once(f"probe:{path}", f"{path}: looks like {backend.name} but cannot be opened "
                     f"({type(failure).__name__}: {failure}); shown as a plain file until it changes "
                     "and can be opened")
            kind = PENDING
    elif st.st_size < HEAD_SIZE:  # too short to tell yet: maybe a data file being written
        kind = PENDING
    KINDS.put(KindMemo.key(os.path.basename(path), st), kind)
    if kind == PENDING:
        return PendingFile(path, st)
    return DataFolder(path, st, ctx, BACKENDS[kind]) if kind >= 0 else PassthroughFile(path, st)


def _probed(backend: Backend, path: str, ctx: Context) -> bool:
    """Whether the folder ``path`` really opens as ``backend``'s kind (a zarr store);
    else it is shown as a plain folder."""
    try:
        backend.probe(path, ctx)
    except Exception as exc:  # shown as a plain folder; the reason is logged once
        log_once(f"probe:{path}", f"{path}: looks like {backend.name} but cannot be opened "
                 f"({type(exc).__name__}: {exc}); shown as a plain folder")
        return False
    return True


def pending_node(probe: Probe) -> Node:
    """A regular file's entry from its probe: as :func:`probed_node` once done; a folder
    if it sniffed as data and its open still runs after ``MAX_PROBE_SECONDS`` (opened on
    first look); a plain file, probed again when it changes, if even its first bytes
    were not read in that time."""
    if not probe.sniffed.is_set():
        log_once(f"slowprobe:{probe.path}", f"{probe.path}: first bytes not read after "
                 f"{MAX_PROBE_SECONDS} s; shown as a plain file")
        return PendingFile(probe.path, probe.st)
    if probe.backend is not None and not probe.future.done():
        log_once(f"slowprobe:{probe.path}", f"{probe.path}: still being opened after {MAX_PROBE_SECONDS} s; "
                 "shown as a folder, opened when first looked into")
        return DataFolder(probe.path, probe.st, probe.ctx, probe.backend)
    return probed_node(probe.path, probe.st, probe.ctx, probe.backend, probe.future.exception())


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
        self._weight = 0  # of the build of the opened file's folder
        self._counted = 0  # what the bound on built nodes counts for it (the build and what the file holds)

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
            log.debug("%s changed on disk; rebuilding its folder", self.path)
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
        if weight:
            self._weight = weight
        # the file's index and top folder count in the bound on built nodes, and what the
        # opened file holds besides nodes (an image file's frame index and metadata),
        # weighed again when it changed
        held = getattr(inner, "held_bytes", None)
        counted = self._weight + (held() // NODE_BYTES if held is not None else 0)
        if weight or counted != self._counted:
            self._counted = counted
            nodes.LIVE.add(self, counted)
        else:
            nodes.LIVE.touch(self)
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
        self.access = Access(os.getuid(), os.getgid(), 0o444, 0o555)  # the mounting user's
        self.ctx = ctx
        self._snapshot = b""

    @property
    def size(self) -> int:
        return 0

    def open(self) -> None:
        data = self.ctx.cache.stats()
        data["recent_reads"] = [list(r) for r in self.ctx.recent_reads]
        data["live_nodes"] = nodes.LIVE.stats()
        data["file_kinds"] = KINDS.stats()
        data["source_listings"] = LISTINGS.stats()
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
    """The root node for SOURCE (a folder, or a single data file or store folder)."""
    st = os.stat(source)
    if stat.S_ISDIR(st.st_mode) and folder_backend_for(source) is None:
        return MountRoot(SourceDirectory(source, st, ctx), ctx)
    node = node_for_path(source, st, ctx)
    if not isinstance(node, DataFolder):
        raise NodeNotFound(f"{source}: not a folder and not a recognised data file")
    logging.getLogger("vfs").debug("mounting single file %s", source)
    return MountRoot(node, ctx)
