"""Incremental re-listing of source folders, off the read path.

A folder that receives one file per frame changes every few milliseconds. Re-listing it
the simple way (``lstat`` and sniff every entry, sort, rebuild every node) costs O(n)
system calls per change and, done inside a look-up, makes every reader of any file in
it wait. Instead:

* the listing is an immutable snapshot (:class:`Listing`): readers use the current one
  while a rescan runs on a background thread, and the new one is swapped in when done;
* a rescan reads names and inode numbers with one ``scandir`` (no ``stat``), and builds
  nodes only for names that are new or whose inode changed (a file replaced by rename);
  the names are kept sorted with one merge, not a re-sort and re-hash of every entry;
* files that could not be shown as data yet (:class:`PendingFile`) are ``stat``-ed at
  each rescan and probed again when their size or mtime changed; one that has not
  changed for ``WATCH_SECONDS`` is no longer watched (it stays a plain file).

A listing weighs :func:`listing_weight` in the bound on built nodes; :data:`LISTINGS`
counts listings built, dropped and held.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from vfs.limits import MAX_PENDING_PROBES, NODE_BYTES, SOURCE_ENTRY_BYTES
from vfs.nodes import Node
from vfs.passthrough import PassthroughFile

#: a file seen incomplete is watched while it changes; unchanged this long, it is left
WATCH_SECONDS = 60.0
#: two threads: a rescan of a huge folder never holds up the others for long
RESCANS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="vfs-rescan")

NodeBuilder = Callable[[str, os.stat_result], "Node | None"]


class PendingFile(PassthroughFile):
    """A file that looked like data (or was too short to tell) but could not be opened
    as such when listed: shown as itself, and probed again when its size or mtime
    changes."""

    def __init__(self, path: str, st: os.stat_result) -> None:
        super().__init__(path, st)
        self.seen = (st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Listing:
    """One snapshot of a folder: name -> node in name order, and each name's inode."""

    nodes: dict[str, Node] = field(default_factory=dict)
    inodes: Mapping[str, int] = field(default_factory=dict)
    #: names of the :class:`PendingFile` entries (at most MAX_PENDING_PROBES)
    pending: tuple[str, ...] = ()

    @classmethod
    def of(cls, nodes: dict[str, Node], inodes: Mapping[str, int]) -> Listing:
        """A first listing: its pending files are found by one pass over the nodes."""
        return cls(nodes, inodes, pending_names(nodes.items(), ()))


def pending_names(candidates: Iterable[tuple[str, Node]], keep: tuple[str, ...]) -> tuple[str, ...]:
    """``keep`` plus the names of the pending files among ``(name, node)`` pairs."""
    found = [name for name, node in candidates if isinstance(node, PendingFile)]
    return (keep + tuple(found))[:MAX_PENDING_PROBES]


def build_node(folder: str, name: str, build: NodeBuilder) -> Node | None:
    """The node for ``folder/name`` (None when it vanished or is not shown)."""
    path = os.path.join(folder, name)
    try:
        return build(path, os.lstat(path))
    except OSError:
        return None


def changed_pending(folder: str, listing: Listing) -> tuple[list[str], set[str]]:
    """The pending files whose size or mtime changed since their probe, and those no
    longer worth watching (gone, or unchanged for ``WATCH_SECONDS``)."""
    changed, dropped = [], set()
    quiet_since = time.time_ns() - int(WATCH_SECONDS * 1e9)
    for name in listing.pending:
        node = listing.nodes.get(name)
        try:
            st = os.stat(os.path.join(folder, name))
        except OSError:
            dropped.add(name)
            continue
        if not isinstance(node, PendingFile):
            dropped.add(name)
        elif (st.st_size, st.st_mtime_ns) != node.seen:
            changed.append(name)
        elif st.st_mtime_ns < quiet_since:
            dropped.add(name)
    return changed, dropped


def rescan(folder: str, old: Listing, build: NodeBuilder, full: bool) -> Listing | None:
    """The folder's new listing, or None when nothing changed.

    ``full``: the folder's mtime changed, so names may have come and gone; otherwise
    only the pending files are looked at.
    """
    removed: set[str] = set()
    redo: list[str] = []
    inodes = old.inodes
    if full:
        with os.scandir(folder) as it:  # names and inode numbers: no stat per entry
            inodes = {entry.name: entry.inode() for entry in it}
        if inodes != old.inodes:  # compared in C; most rescans stop here or add a few names
            known = old.inodes.get
            redo = [name for name, ino in inodes.items() if known(name) != ino]  # new or replaced
            if len(inodes) - sum(name not in old.inodes for name in redo) != len(old.nodes):
                removed = old.nodes.keys() - inodes.keys()
    changed, dropped = changed_pending(folder, old)
    redo += changed
    if not removed and not redo and not dropped:
        return None
    fresh: dict[str, Node] = {}
    for name in redo:
        node = build_node(folder, name, build)
        if node is not None:
            fresh[name] = node
    gone = removed | (set(redo) - fresh.keys())
    if gone or fresh:
        inodes = {**inodes}
        for name in gone:
            inodes.pop(name, None)
    keep = tuple(name for name in old.pending if name not in gone and name not in fresh and name not in dropped)
    return Listing(merge(old.nodes, fresh, gone), inodes, pending_names(fresh.items(), keep))


def merge(old: dict[str, Node], fresh: Mapping[str, Node], gone: set[str]) -> dict[str, Node]:
    """``old`` without ``gone``, with ``fresh`` added or replaced, in name order.

    New names sorting after every old name (frame files numbered in order) are appended;
    otherwise the sorted old names and the sorted new ones are merged by one sort that
    sees two runs (linear time), never re-sorting entry by entry.
    """
    added = sorted(name for name in fresh if name not in old)
    last = next(reversed(old.keys()), None) if old else None
    if not gone and (not added or last is None or added[0] > last):
        out = dict(old)
        out.update((name, fresh[name]) for name in sorted(fresh))  # replaced names keep their place
        return out
    names = [name for name in old if name not in gone] if gone else list(old)
    names += added
    names.sort()  # two sorted runs: Timsort merges them in linear time
    ordered: dict[str, Node | None] = dict.fromkeys(names)  # the order; values filled in C
    if gone:
        ordered.update((n, old[n]) for n in names if n in old)
    else:
        ordered.update(old)
    ordered.update(fresh)
    return cast("dict[str, Node]", ordered)


def listing_weight(entries: int) -> int:
    """A source folder listing's weight in the bound on built nodes (``nodes.LIVE``): a
    node per entry and the rest of what an entry costs (``SOURCE_ENTRY_BYTES``)."""
    return entries + entries * SOURCE_ENTRY_BYTES // NODE_BYTES


class ListingCounters:
    """Source folder listings built (first listings and rebuilds after a drop), dropped,
    and held now with their entries: the ``source_listings`` of ``.vfs-stats``."""

    def __init__(self) -> None:
        self._folders: weakref.WeakSet[Any] = weakref.WeakSet()  # source folders alive, listed or not
        self._counts = {"listings": 0, "drops": 0}
        self._lock = threading.Lock()

    def register(self, folder: object) -> None:
        with self._lock:
            self._folders.add(folder)

    def count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            folders = list(self._folders)
            counts = dict(self._counts)
        held = [len(kids) for kids in (f._children for f in folders) if kids is not None]
        return {**counts, "held": len(held), "held_entries": sum(held)}


#: the counters of the mount's source folder listings
LISTINGS = ListingCounters()
